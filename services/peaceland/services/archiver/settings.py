"""Settings of the archiving consumer. Environment: ``PEACELAND_ARCHIVER_<NAME>``."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from peaceland.services.settings import ConsumerSettings
from peaceland.tenants.environment import env_prefix


class ArchiverSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix=env_prefix("archiver"), extra="ignore")
    consumer_name: ClassVar[str] = "archiver"

    #: Cassandra writes in flight at once.
    write_concurrency: int = Field(default=64, ge=1, le=1024)
    #: A report's upserts travel as unlogged batches of at most this many bytes (estimated)
    #: and statements. Cassandra refuses a batch over several partitions whole beyond its
    #: ``batch_size_fail_threshold`` (50 KiB by default): keep well under the cluster's.
    batch_max_bytes: int = Field(default=32 * 1024, ge=1024, le=1024 * 1024)
    batch_max_statements: int = Field(default=16, ge=1, le=1000)
    metrics_port: int = Field(default=9101, ge=0, le=65535)
    #: Seconds a dead letter may take to be acknowledged before the batch's flush fails and
    #: is retried (the batch is not committed meanwhile).
    dead_letter_timeout: float = Field(default=30.0, gt=0, le=300)
