"""``python -m peaceland.services.archiver``: run one force's archiver until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from peaceland.services import metrics
from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import resources_for


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    settings = ArchiverSettings()  # read from the environment
    stop = threading.Event()
    # SIGTERM (Kubernetes stopping the pod) and Ctrl-C: finish the batch, commit, close.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics.serve(settings.metrics_port)
    session = connect(settings.cassandra_contact_points)
    try:
        store = ReportStore(
            session, resources_for(settings.force_id).keyspace, settings.write_concurrency
        )
        Archiver(settings, store).run(stop)
    finally:
        shutdown_session(session)


if __name__ == "__main__":
    main()
