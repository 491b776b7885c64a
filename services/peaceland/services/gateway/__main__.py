"""``python -m peaceland.services.gateway``: serve the ingest gateway until SIGTERM."""

from __future__ import annotations

import logging
import sys

import uvicorn

from peaceland.services.gateway.app import create_app
from peaceland.services.gateway.settings import GatewaySettings
from peaceland.tenants.access import settings_or_exit


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    settings = settings_or_exit(GatewaySettings, "gateway")
    # uvicorn stops on SIGTERM after in-flight requests, which wait for their Kafka acks.
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        log_level="warning",
        access_log=False,
    )


if __name__ == "__main__":
    main()
