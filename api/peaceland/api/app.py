"""The control plane's application, put together."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any, Final

from fastapi import FastAPI
from prometheus_client import make_asgi_app
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import IntegrityError

from peaceland.analytics.lake import open_storage
from peaceland.api import dashboard, problems, security
from peaceland.api.alert_desk import Desks, LifecyclePublisher
from peaceland.api.alert_meter import AlertMeter
from peaceland.api.auth import Authenticator, GatewayToken, LocalTokens
from peaceland.api.db import make_engine, make_sessions, now
from peaceland.api.drones import DroneWatches
from peaceland.api.force_data import ForceData
from peaceland.api.kube import Forces, make_client
from peaceland.api.models import User
from peaceland.api.reconcile import ForceReconciler
from peaceland.api.routes import (
    alerts,
    analytics,
    audit,
    auth,
    drones,
    internal,
    members,
    plans,
    positions,
    usage,
)
from peaceland.api.routes import forces as force_routes
from peaceland.api.routes import keys as key_routes
from peaceland.api.routes.analytics import Analytics
from peaceland.api.settings import ApiSettings
from peaceland.api.throttle import SignInThrottle
from peaceland.tenants.provisioning.lake_identities import S3Key

log = logging.getLogger(__name__)

#: Every router of the application (a test walks their routes: each must say who it admits).
ROUTERS: Final = tuple(
    module.router
    for module in (
        auth,
        plans,
        force_routes,
        drones,
        key_routes,
        members,
        alerts,
        positions,
        analytics,
        audit,
        usage,
        internal,
    )
)

DESCRIPTION = """\
Sell and configure police forces: plans, forces (their PoliceForce resources), drones and
their keys, people and roles, the audit log, usage and invoices.

Sign in with `POST /v1/auth/token`, then send `Authorization: Bearer <token>`. Every error is
`application/problem+json` (RFC 9457). Lists are paged with `cursor`; creates take an
`Idempotency-Key`; changes need `If-Match` with the ETag you read.
"""


def create_app(
    settings: ApiSettings,
    *,
    engine: Engine | None = None,
    forces: Forces | None = None,
    authenticators: list[Authenticator] | None = None,
) -> FastAPI:
    own_forces = forces is None

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        reconciler = meter = publisher = None
        data: ForceData | None = app.state.force_data
        if data is not None and settings.lifecycle_publish_seconds > 0:
            publisher = LifecyclePublisher(
                app.state.forces, app.state.desks, settings.lifecycle_publish_seconds
            )
            publisher.start()
        if data is not None and settings.alert_meter_seconds > 0:
            meter = AlertMeter(
                app.state.sessions,
                app.state.forces,
                data,
                settings.alert_meter_seconds,
                timeout=settings.data_timeout_seconds,
            )
            meter.start()
        if settings.reconcile_seconds > 0:
            reconciler = ForceReconciler(
                app.state.sessions,
                app.state.forces,
                settings.reconcile_seconds,
                absent_for=settings.reconcile_absent_seconds,
            )
            reconciler.start()
        yield
        await _feeds_closed(app)
        if reconciler is not None:
            reconciler.stop()
        if meter is not None:
            meter.stop()
        if publisher is not None:
            publisher.stop()
        if data is not None:
            await asyncio.to_thread(app.state.drones.close)  # joins the readers: not on the loop
            app.state.desks.clear()
            data.close()
        if own_forces:
            app.state.forces.close()

    app = FastAPI(
        lifespan=lifespan,
        title="PeaceLand control plane",
        version="1",
        summary="The tenant-management API.",
        description=DESCRIPTION,
    )
    engine = engine or make_engine(settings.database_url)
    app.state.settings = settings
    app.state.engine = engine
    app.state.sessions = make_sessions(engine)
    app.state.sign_ins = SignInThrottle(
        concurrent=settings.concurrent_sign_ins, per_minute=settings.sign_ins_per_minute
    )
    app.state.forces = forces or Forces(make_client(settings.kubeconfig), settings.namespace)
    app.state.live_feeds = alerts.FeedCount(settings.live_feeds)
    app.state.closing_feeds = set()
    servers = settings.data_servers()
    app.state.force_data = (
        ForceData(*servers, app.state.forces.secret_data, timeout=settings.data_timeout_seconds)
        if servers is not None
        else None
    )
    app.state.drones = (
        DroneWatches(
            app.state.force_data,
            lookback=timedelta(seconds=settings.drones_lookback_seconds),
            linger=settings.drones_linger_seconds,
            timeout=settings.data_timeout_seconds,
        )
        if app.state.force_data is not None
        else None
    )
    app.state.desks = (
        Desks(app.state.force_data, timeout=settings.data_timeout_seconds)
        if app.state.force_data is not None
        else None
    )
    app.state.authenticators = authenticators or [
        LocalTokens(),
        GatewayToken(settings.current_gateway_token),
    ]
    app.state.analytics = _analytics(settings, app.state.force_data)
    problems.install(app)
    for router in ROUTERS:
        app.include_router(router)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/readyz", include_in_schema=False)
    def readyz() -> dict[str, str]:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        return {"status": "ready"}

    dashboard.mount(app, settings.dashboard_style_url)
    app.mount("/metrics", make_asgi_app())
    return app


def _analytics(settings: ApiSettings, force_data: ForceData | None) -> Analytics:
    """The lake the analytics routes read: on an object store, each force's questions
    read it under the force's own key."""
    on_store = (settings.lake_uri or "").startswith("s3://")
    force_keys: Callable[[str], S3Key | None] | None = None
    if on_store:
        # Never this process's own keys: without the forces' Secrets, no force's lake.
        force_keys = force_data.lake_key if force_data is not None else lambda _force: None
    return Analytics(
        open_storage(settings.lake_uri) if settings.lake_uri else None,
        settings,
        force_keys=force_keys,
    )


async def _feeds_closed(app: FastAPI) -> None:
    """The feeds' Kafka clients, closing as their pages go with the server: once every feed
    has let go (its close registered), wait for the closes."""
    feeds: alerts.FeedCount = app.state.live_feeds
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 15
    while feeds.open and loop.time() < deadline:
        await asyncio.sleep(0.05)
    closing: set[asyncio.Future[Any]] = app.state.closing_feeds
    if closing:
        await asyncio.wait(list(closing), timeout=15)


def bootstrap_admin(settings: ApiSettings, engine: Engine) -> bool:
    """Make the first platform admin when there is none; True if one was made."""
    if settings.bootstrap_admin_email is None or settings.bootstrap_admin_password_file is None:
        return False
    password = settings.bootstrap_admin_password_file.read_text(encoding="utf-8").strip()
    if len(password) < security.MIN_PASSWORD_LENGTH:
        raise ValueError(
            f"the bootstrap admin's password is shorter than {security.MIN_PASSWORD_LENGTH}"
        )
    sessions = make_sessions(engine)
    with sessions() as db:
        if db.scalars(select(User.id).where(User.is_platform_admin).limit(1)).first():
            return False
        db.add(
            User(
                email=settings.bootstrap_admin_email.lower(),
                display_name="Platform admin",
                password_hash=security.hash_password(password),
                is_platform_admin=True,
                created_at=now(),
            )
        )
        try:
            db.commit()
        except IntegrityError:  # another replica starting at the same moment made it
            return False
    log.info("made the first platform admin, %s", settings.bootstrap_admin_email)
    return True
