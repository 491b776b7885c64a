"""``python -m peaceland.services.lake``: write one force's records to the lake until SIGTERM."""

from __future__ import annotations

from peaceland.analytics.lake import LakeWriter, open_storage
from peaceland.services.lake.consumer import LakeConsumer
from peaceland.services.lake.settings import LakeSettings
from peaceland.services.stream import serve

if __name__ == "__main__":
    settings = LakeSettings()  # read from the environment
    serve(
        settings,
        lambda: LakeConsumer(
            settings,
            LakeWriter(
                open_storage(settings.lake_uri, s3_keys=settings.s3_keys()), settings.force_id
            ),
        ),
    )
