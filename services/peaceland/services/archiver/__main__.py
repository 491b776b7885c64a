"""``python -m peaceland.services.archiver``: archive one force's reports until SIGTERM."""

from __future__ import annotations

from peaceland.services.archiver.consumer import Archiver
from peaceland.services.archiver.settings import ArchiverSettings
from peaceland.services.archiver.store import ReportStore
from peaceland.services.stream import main
from peaceland.tenants.access import settings_or_exit
from peaceland.tenants.forces import resources_for

if __name__ == "__main__":
    settings = settings_or_exit(ArchiverSettings, "archiver")
    keyspace = resources_for(settings.force_id).keyspace
    main(
        settings,
        lambda session: Archiver(
            settings,
            ReportStore(
                session,
                keyspace,
                settings.write_concurrency,
                batch_max_bytes=settings.batch_max_bytes,
                batch_max_statements=settings.batch_max_statements,
            ),
        ),
    )
