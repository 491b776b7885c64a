"""Settings of the archiving consumer. Environment: ``PEACELAND_ARCHIVER_<NAME>``."""

from __future__ import annotations

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from peaceland.tenants.forces import validate_force_id


class ArchiverSettings(BaseSettings):
    """One archiver process serves one police force."""

    model_config = SettingsConfigDict(env_prefix="PEACELAND_ARCHIVER_", extra="ignore")

    force_id: str
    kafka_bootstrap_servers: str = Field(
        validation_alias=AliasChoices(
            "PEACELAND_ARCHIVER_KAFKA_BOOTSTRAP_SERVERS", "KAFKA_BOOTSTRAP_SERVERS"
        )
    )
    cassandra_contact_points: str = Field(
        validation_alias=AliasChoices(
            "PEACELAND_ARCHIVER_CASSANDRA_CONTACT_POINTS", "CASSANDRA_CONTACT_POINTS"
        )
    )
    #: Consumer group; one per force, shared by all replicas of its archiver.
    group_id: str | None = None
    #: Most records taken from Kafka, written and committed together.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Longest wait for a first record of a batch, in seconds.
    poll_timeout: float = Field(default=0.2, gt=0, le=10)
    #: Cassandra writes in flight at once.
    write_concurrency: int = Field(default=64, ge=1, le=1024)
    #: First and longest pause between retries while Cassandra refuses writes, in seconds.
    retry_backoff: float = Field(default=0.5, gt=0)
    retry_backoff_max: float = Field(default=10.0, gt=0)
    #: Port of the Prometheus /metrics endpoint; 0 serves none.
    metrics_port: int = Field(default=9101, ge=0, le=65535)

    @field_validator("force_id")
    @classmethod
    def _force_id(cls, value: str) -> str:
        return validate_force_id(value)

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"peaceland.{self.force_id}.archiver"
