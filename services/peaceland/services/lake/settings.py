"""Settings of the lake consumer. Environment: ``PEACELAND_LAKE_<NAME>``."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import ClassVar

from pydantic import Field, model_validator
from pydantic_settings import SettingsConfigDict

from peaceland.services.settings import ConsumerSettings
from peaceland.tenants.access import secret_value
from peaceland.tenants.environment import env_prefix


class LakeSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix=env_prefix("lake"), extra="ignore")
    consumer_name: ClassVar[str] = "lake"

    #: Where the lake is: a local directory, or any filesystem pyarrow opens (``s3://…``).
    lake_uri: str = Field(min_length=1)
    #: A Kafka partition's records are written as files once this many are buffered …
    flush_records: int = Field(default=20_000, ge=1, le=1_000_000)
    #: … or once the oldest buffered has waited this long, in seconds: how far the lake may
    #: lag the stream, and (with the records per second) how large its files are.
    flush_seconds: float = Field(default=60.0, gt=0, le=3600)
    #: Every buffer is written once the records buffered over all partitions take this many
    #: bytes as received (in memory their rows take a few times more): the memory bound,
    #: whatever the partitions and the records' sizes.
    flush_bytes: int = Field(default=64 * 1024 * 1024, ge=1024, le=4 * 1024**3)
    #: Every this many seconds, the consumer holding the reports stream's partition 0
    #: compacts the force's settled hours and deletes those past ``retention_days``
    #: (``peaceland.analytics.compaction``; a lake on this machine's disks only); 0: never.
    compact_every_seconds: float = Field(default=300.0, ge=0, le=86_400)
    #: An hour is compacted once it ended, and its last file was written, this long ago.
    compact_settle_seconds: float = Field(default=900.0, ge=10, le=86_400)
    #: Files a compaction replaced stay this long for the queries under way that listed
    #: them: longer than the longest query (the API's ``sql_seconds_max``).
    compact_linger_seconds: float = Field(default=900.0, ge=1, le=86_400)
    #: On an object store: the local folder where an hour's files are copied to be
    #: compacted (one hour's at a time, and the engine's spill): the pod mounts one.
    compact_work_dir: Path = Field(
        default_factory=lambda: Path(tempfile.gettempdir()) / "peaceland-lake"
    )
    #: What the compaction's engine may hold in memory before it spills to the lake's disk.
    compact_memory_mb: int = Field(default=256, ge=64, le=65_536)
    #: Days the force keeps its reports, sightings and alerts (its ``retentionDays``): older
    #: hours are deleted from the lake. None: kept for ever.
    retention_days: int | None = Field(default=None, ge=1, le=3_650)
    metrics_port: int = Field(default=9103, ge=0, le=65535)
    #: On an ``s3://`` lake: the force's own keys of the store, as files (the operator mounts
    #: them from the force's Secret); without them, the AWS SDK's usual sources.
    s3_access_key_id_file: Path | None = None
    s3_secret_access_key_file: Path | None = None

    @model_validator(mode="after")
    def _keys_readable(self) -> LakeSettings:
        self.s3_keys()  # both or neither, and readable: or say so at start
        return self

    def s3_keys(self) -> tuple[str, str] | None:
        """The store's access key id and secret the files hold (read now: a rotation rolls
        the pod, but a read at each start costs nothing); None when none are given."""
        if (self.s3_access_key_id_file is None) != (self.s3_secret_access_key_file is None):
            raise ValueError("give both s3_access_key_id_file and s3_secret_access_key_file")
        key_id = secret_value(None, self.s3_access_key_id_file, "the lake's S3 access key id")
        secret = secret_value(None, self.s3_secret_access_key_file, "the lake's S3 secret")
        return (key_id, secret) if key_id is not None and secret is not None else None
