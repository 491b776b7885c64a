"""``python -m peaceland.api [migrate|serve]``: bring the schema up to date, then serve.

``serve`` (the default) migrates first too, under an advisory lock, so that two replicas
starting together migrate once.
"""

from __future__ import annotations

import logging
import sys

import uvicorn

from peaceland.api.app import bootstrap_admin, create_app
from peaceland.api.db import make_engine
from peaceland.api.migrate import upgrade
from peaceland.api.settings import ApiSettings
from peaceland.tenants.access import settings_or_exit


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    command = argv[0] if argv else "serve"
    if command not in {"migrate", "serve"}:
        print("usage: python -m peaceland.api [migrate|serve]", file=sys.stderr)  # noqa: T201
        return 2
    settings = settings_or_exit(ApiSettings, "control plane")
    engine = make_engine(settings.database_url)
    upgrade(engine)
    bootstrap_admin(settings, engine)
    if command == "migrate":
        return 0
    app = create_app(settings, engine=engine)
    # Live feeds never end by themselves: past 5 s, a stop closes them (their pages come back
    # to another replica), then the lifespan closes their Kafka clients.
    uvicorn.run(
        app,
        host=settings.host,
        port=settings.port,
        log_level="info",
        timeout_graceful_shutdown=5,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
