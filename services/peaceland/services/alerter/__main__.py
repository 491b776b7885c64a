"""``python -m peaceland.services.alerter``: raise one force's alerts until SIGTERM."""

from __future__ import annotations

from peaceland.services.alerter.book import AlertBook
from peaceland.services.alerter.consumer import Alerter
from peaceland.services.alerter.settings import AlerterSettings
from peaceland.services.force_settings import SettingsSource
from peaceland.services.stream import main
from peaceland.tenants.access import settings_or_exit
from peaceland.tenants.forces import resources_for

if __name__ == "__main__":
    settings = settings_or_exit(AlerterSettings, "alerter")
    keyspace = resources_for(settings.force_id).keyspace
    source = SettingsSource(settings.default_settings(), settings.settings_file)
    main(
        settings,
        lambda session: Alerter(settings, AlertBook(session, keyspace, settings.force_id), source),
    )
