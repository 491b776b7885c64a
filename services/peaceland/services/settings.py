"""What every stream consumer's settings share; each consumer adds its own and a prefix."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, field_validator

from peaceland.tenants.access import ServerAccessSettings
from peaceland.tenants.cassandra import Consistency, SerialConsistency
from peaceland.tenants.forces import consumer_group, validate_force_id


class ConsumerSettings(ServerAccessSettings):
    """One consumer process serves one police force; its replicas share one consumer group.

    The servers and this process's credentials on them (``KAFKA_BOOTSTRAP_SERVERS``,
    ``KAFKA_USERNAME_FILE``, ``CASSANDRA_CONTACT_POINTS``, ``CASSANDRA_LOCAL_DC`` …) are read
    without the consumer's prefix (``peaceland.tenants.access``): every process of a
    deployment talks to the same servers.
    """

    #: Names the consumer in its group id: archiver, alerter, …
    consumer_name: ClassVar[str]

    force_id: str
    #: Seconds one request to Cassandra may take before it fails (and is retried).
    cassandra_request_timeout: float = Field(default=10.0, gt=0, le=120)
    #: Level of every read and write: the default survives the loss of one replica of three
    #: without losing an acknowledged write or reading a stale row.
    cassandra_consistency: Consistency = "LOCAL_QUORUM"
    #: Level of the Paxos phase of lightweight transactions (the alerter's dedup state).
    cassandra_serial_consistency: SerialConsistency = "LOCAL_SERIAL"
    #: Consumer group; by default one per force and consumer.
    group_id: str | None = None
    #: Most records taken from Kafka and handled together.
    batch_size: int = Field(default=500, ge=1, le=10_000)
    #: Longest wait for the first record of a batch, in seconds.
    poll_timeout: float = Field(default=0.2, gt=0, le=10)
    #: First and longest pause between retries while Cassandra refuses work, in seconds.
    retry_backoff: float = Field(default=0.5, gt=0)
    retry_backoff_max: float = Field(default=10.0, gt=0)
    #: Port of the probes (/livez, /readyz) and Prometheus /metrics; 0 serves none.
    metrics_port: int = Field(default=0, ge=0, le=65535)
    #: Seconds the poll loop may go without turning before /livez fails, every thread's
    #: stack is logged and the process ends to be restarted: longer than a batch's writes
    #: may take while Cassandra times out (a call that says how long it may take, such as a
    #: Kafka transaction's, is held to that instead).
    liveness_timeout: float = Field(default=180.0, ge=5, le=3600)
    #: Seconds a batch may be retried (a server refusing work) before /readyz fails.
    ready_grace: float = Field(default=30.0, ge=0, le=3600)

    @field_validator("force_id")
    @classmethod
    def _force_id(cls, value: str) -> str:
        return validate_force_id(value)

    @property
    def consumer_group(self) -> str:
        return self.group_id or consumer_group(self.force_id, self.consumer_name)
