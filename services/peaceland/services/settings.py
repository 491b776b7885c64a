"""What every stream consumer's settings share; each consumer adds its own and a prefix."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings

from peaceland.tenants.forces import validate_force_id


class ConsumerSettings(BaseSettings):
    """One consumer process serves one police force; its replicas share one consumer group.

    ``KAFKA_BOOTSTRAP_SERVERS`` and ``CASSANDRA_CONTACT_POINTS`` are read without the
    consumer's prefix: every process of a deployment talks to the same servers.
    """

    #: Names the consumer in its group id: archiver, alerter, …
    consumer_name: ClassVar[str]

    force_id: str
    kafka_bootstrap_servers: str = Field(validation_alias="KAFKA_BOOTSTRAP_SERVERS")
    cassandra_contact_points: str = Field(validation_alias="CASSANDRA_CONTACT_POINTS")
    #: Consumer group; by default one per force and consumer.
    group_id: str | None = None
    #: Most records taken from Kafka and handled together.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Longest wait for the first record of a batch, in seconds.
    poll_timeout: float = Field(default=0.2, gt=0, le=10)
    #: First and longest pause between retries while Cassandra refuses work, in seconds.
    retry_backoff: float = Field(default=0.5, gt=0)
    retry_backoff_max: float = Field(default=10.0, gt=0)
    #: Port of the Prometheus /metrics endpoint; 0 serves none.
    metrics_port: int = Field(default=0, ge=0, le=65535)

    @field_validator("force_id")
    @classmethod
    def _force_id(cls, value: str) -> str:
        return validate_force_id(value)

    @property
    def consumer_group(self) -> str:
        return self.group_id or f"peaceland.{self.force_id}.{self.consumer_name}"
