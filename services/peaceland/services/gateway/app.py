"""The gateway application: its routes (``routes``), drone keys (``auth``), body parsing
(``parsing``), per-force budgets (``admission``) and its Kafka producer (``sender``), put
together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import datetime

from fastapi import FastAPI
from prometheus_client import make_asgi_app

from peaceland.services.gateway.admission import Admission
from peaceland.services.gateway.auth import DroneKeys
from peaceland.services.gateway.parsing import BodyParser
from peaceland.services.gateway.routes import router
from peaceland.services.gateway.sender import KafkaSender
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.tenants.reports import utc_now


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
        app.state.sender = sender or KafkaSender(
            settings.force_access,
            settings.delivery_timeout_seconds,
            queue_bytes=2 * settings.max_inflight_bytes,
        )
        yield
        if own:
            app.state.sender.close()

    app = FastAPI(
        title="PeaceLand ingest gateway",
        version="1",
        summary="Where drones send their reports.",
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.drone_keys = DroneKeys(settings)
    app.state.parser = BodyParser(settings.max_batch)
    app.state.admission = Admission(
        per_force_bytes=settings.max_inflight_bytes_per_force,
        total_bytes=settings.max_inflight_bytes,
    )
    app.include_router(router)
    app.mount("/metrics", make_asgi_app())
    return app
