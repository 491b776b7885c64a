"""Settings of the lake consumer. Environment: ``PEACELAND_LAKE_<NAME>``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from peaceland.services.settings import ConsumerSettings
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
    metrics_port: int = Field(default=9103, ge=0, le=65535)
