"""The gateway application: its routes (``routes``), drone keys (``auth``), body parsing
(``parsing``), per-force budgets (``admission``) and its Kafka producer (``sender``), put
together.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import make_asgi_app

from peaceland.services.gateway.admission import Admission
from peaceland.services.gateway.auth import DroneKeys, KeyFeed
from peaceland.services.gateway.credentials import SecretCredentials, kube_client
from peaceland.services.gateway.parsing import BodyParser
from peaceland.services.gateway.quotas import ReportQuotas
from peaceland.services.gateway.routes import router
from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.services.gateway.usage import UsageMeter, UsagePoster
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import KafkaAccess
from peaceland.tenants.reports import utc_now

log = logging.getLogger(__name__)


def create_app(
    settings: GatewaySettings,
    sender: KafkaSender | None = None,
    clock: Callable[[], datetime] = utc_now,
) -> FastAPI:
    """The gateway application; ``sender`` defaults to one on the settings' Kafka; ``clock``
    is when reports are received (the contract's reference time)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        own = sender is None
        secrets = None
        access_for: Callable[[str | None], KafkaAccess] = settings.force_access
        if settings.force_credentials_namespace:
            secrets = SecretCredentials(
                kube_client(settings.kubeconfig),
                settings.force_credentials_namespace,
                settings.force_credentials_refresh_seconds,
            )
            secrets.start()
            access_for = functools.partial(settings.force_access_from, secrets)
        app.state.sender = sender or KafkaSender(
            access_for,
            settings.delivery_timeout_seconds,
            queue_bytes=2 * settings.max_inflight_bytes,
        )
        tasks: list[asyncio.Task[None]] = []
        feed = poster = None
        if settings.control_plane_url is not None:
            token = settings.current_control_plane_token
            feed = KeyFeed(
                app.state.drone_keys, app.state.quotas, settings.control_plane_url, token,
                settings.key_refresh_seconds,
            )  # fmt: skip
            poster = UsagePoster(
                app.state.usage, settings.control_plane_url, token,
                settings.usage_interval_seconds,
            )  # fmt: skip
            tasks = [asyncio.create_task(feed.run()), asyncio.create_task(poster.run())]
        tasks.append(asyncio.create_task(_open_producers(app.state.drone_keys, app.state.sender)))
        yield
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if poster is not None and feed is not None:
            await poster.close()
            await feed.close()
        if own:
            app.state.sender.close()
        if secrets is not None:
            secrets.stop()

    app = FastAPI(
        title="PeaceLand ingest gateway",
        version="1",
        summary="Where drones send their reports.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.drone_keys = DroneKeys(settings.force_by_key_digest())
    app.state.usage = UsageMeter()
    app.state.quotas = ReportQuotas(burst_seconds=settings.quota_burst_seconds)
    app.state.parser = BodyParser(settings.max_batch)
    app.state.admission = Admission(
        per_force_bytes=settings.max_inflight_bytes_per_force,
        total_bytes=settings.max_inflight_bytes,
    )
    app.include_router(router)
    app.mount("/metrics", make_asgi_app())
    return app


async def _open_producers(
    keys: DroneKeys,
    sender: KafkaSender,
    interval: float = 1.0,
    *,
    longest_wait: float = 60.0,
) -> None:
    """Ready each force's producer as soon as a key speaks for the force, before its first
    report (and again after a rotation replaced it). A force whose producer cannot open yet
    (no topic yet, Kafka away) waits longer each time, up to ``longest_wait``, so that it
    never holds the others back for long; one force's failure never ends the loop."""
    opener = ThreadPoolExecutor(max_workers=1, thread_name_prefix="open-producers")
    loop = asyncio.get_running_loop()
    waits: dict[str, tuple[float, float]] = {}  # force: (next try, wait after a failure)
    try:
        while True:
            for force_id in sorted(keys.forces()):
                next_try, wait = waits.get(force_id, (0.0, interval))
                if sender.is_open(force_id) or time.monotonic() < next_try:
                    continue
                try:
                    topic = resources_for(force_id).reports_topic
                    await loop.run_in_executor(opener, sender.open, force_id, topic)
                    waits.pop(force_id, None)
                except Exception as exc:  # logged; tried again later
                    log.warning("the producer of %s is not open yet: %s", force_id, exc)
                    waits[force_id] = (time.monotonic() + wait, min(2 * wait, longest_wait))
            await asyncio.sleep(interval)
    finally:
        opener.shutdown(wait=False, cancel_futures=True)
