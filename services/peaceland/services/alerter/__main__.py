"""``python -m peaceland.services.alerter``: raise one force's alerts until SIGTERM."""

from __future__ import annotations

import logging
import signal
import sys
import threading

from peaceland.services import metrics
from peaceland.services.alerter.book import AlertBook
from peaceland.services.alerter.consumer import Alerter
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.force_settings import SettingsSource
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import resources_for


def main() -> None:
    logging.basicConfig(
        level=logging.INFO,
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("cassandra").setLevel(logging.WARNING)
    settings = AlerterSettings()  # read from the environment
    stop = threading.Event()
    # SIGTERM (Kubernetes stopping the pod) and Ctrl-C: finish the batch, commit, close.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    metrics.serve(settings.metrics_port)
    session = connect(settings.cassandra_contact_points)
    try:
        book = AlertBook(session, resources_for(settings.force_id).keyspace, settings.force_id)
        source = SettingsSource(
            settings.force_id, settings.default_alerting(), settings.settings_file
        )
        Alerter(settings, book, source).run(stop)
    finally:
        shutdown_session(session)


if __name__ == "__main__":
    main()
