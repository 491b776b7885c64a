"""``python -m peaceland.services.lake``: write one force's records to the lake until SIGTERM."""

from __future__ import annotations

from peaceland.analytics.lake import LakeWriter, open_storage
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.services.stream import serve
from peaceland.tenants.access import settings_or_exit

if __name__ == "__main__":
    settings = settings_or_exit(LakeSettings, "lake consumer")
    serve(
        settings,
        lambda: LakeConsumer(
            settings,
            LakeWriter(
                open_storage(settings.lake_uri, s3_keys=settings.s3_keys()), settings.force_id
            ),
        ),
    )
