"""The operator's settings: where Kafka and Cassandra are, how it watches and how often."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from peaceland.analytics.lake import open_storage
from peaceland.tenants.access import ServerAccessSettings, secret_value
from peaceland.tenants.cassandra import parse_contact_points
from peaceland.tenants.environment import env_prefix
from peaceland.tenants.kafka import Config, client_config
from peaceland.tenants.provisioning.lake_identities import LakeLocation, S3Key, iam_endpoint_of
from peaceland.tenants.workloads import CONSUMERS, LAKE


class OperatorSettings(ServerAccessSettings):
    """Environment: ``PEACELAND_OPERATOR_<NAME>``; the servers and the operator's own
    credentials on them by their usual variables (``peaceland.tenants.access``): the
    operator signs in as the platform's administrator of Kafka (its one super user) and of
    Cassandra, to make each force's principals, ACLs and roles.

    Read once at start-up; a bad value stops the operator with a message naming it.
    """

    model_config = SettingsConfigDict(env_prefix=env_prefix("operator"), extra="ignore")

    #: Copies of the control keyspace that holds who owns each force id (claims are
    #: compare-and-set writes: they need a quorum of these copies up).
    claims_replication_factor: int = Field(default=3, ge=1, le=9)
    #: The servers as the consumers' pods reach them; the operator's own by default.
    consumers_kafka_bootstrap_servers: str | None = None
    consumers_cassandra_contact_points: str | None = None
    #: Where every force's lake consumer writes its analytics lake (docs/analytics.md), as
    #: its pods reach it; None runs no lake consumer. A local path is for the local node,
    #: whose processes share this machine's disk.
    lake_uri: str | None = None
    #: How long the lake consumers buffer a partition at most, in seconds (None: their
    #: default, a minute); the local platform makes it a few seconds.
    lake_flush_seconds: float | None = Field(default=None, gt=0, le=3600)
    #: On an ``s3://`` lake: the store's administrator, who gives each force users of its
    #: own on the store, refused outside the force's folder
    #: (``peaceland.tenants.provisioning.lake_identities``). Required with an s3:// lake.
    lake_admin_access_key_id: str | None = None
    lake_admin_secret_access_key: SecretStr | None = None
    #: … or its secret as a file (a mounted Secret's item).
    lake_admin_secret_access_key_file: Path | None = None
    #: The store's IAM API; by default the lake URI's endpoint (where SeaweedFS serves it;
    #: on AWS, IAM's own endpoint).
    lake_iam_endpoint: str | None = None

    #: Image repositories a PoliceForce may run as its consumers (any tag or digest of
    #: one); any other image is refused with the condition NotAllowed.
    allowed_images: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["peaceland/services"]
    )
    #: The most a PoliceForce may ask of this installation (the CRD's own bounds are wider);
    #: more is refused with the condition NotAllowed, naming the field and the bound.
    max_partitions: int = Field(default=96, ge=1, le=1_000)
    max_kafka_replication_factor: int = Field(default=5, ge=1, le=5)
    max_kafka_retention_hours: int = Field(default=720, ge=1, le=8_760)
    max_cassandra_replication_factor: int = Field(default=5, ge=1, le=45)
    max_retention_days: int = Field(default=3_650, ge=1, le=3_650)
    max_replicas: int = Field(default=24, ge=1, le=100)

    #: Namespaces whose PoliceForces this operator serves; empty: every namespace.
    namespaces: Annotated[list[str], NoDecode] = Field(default_factory=list)
    #: The peering object replicas share (a ClusterKopfPeering, or a KopfPeering when
    #: namespaces are listed) so that only one of them acts; None runs alone, unguarded.
    peering: str | None = "peaceland"
    #: This replica's peering priority; the highest live one acts, the others wait. None
    #: draws one at random, so two replicas never tie (a tie would freeze both).
    priority: int | None = Field(default=None, ge=0)

    #: Seconds between checks of each force's consumers until they are available.
    poll_interval: float = Field(default=2.0, gt=0, le=300)
    #: Seconds between full reconciles of a Ready force (drift repair).
    drift_interval: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds between checks of each force's consumer groups in Kafka (committed offsets
    #: and lag).
    progress_interval: float = Field(default=15.0, gt=0, le=3600)
    #: Seconds between measures of each Ready force's usage (alerts raised per day, bytes
    #: stored), written to its status for the control plane to bill.
    usage_interval: float = Field(default=60.0, gt=0, le=3600)
    #: Seconds a consumer may commit nothing while reports wait before its force says it
    #: has stalled (ConsumersProgressing False, Ready False, a Warning Event).
    stall_after: float = Field(default=60.0, gt=0, le=86_400)
    #: Longest wait between retries while Kafka or Cassandra is unreachable, in seconds.
    retry_max_delay: float = Field(default=60.0, gt=0)
    #: Timeout of one request to Kafka, Cassandra or the API server, in seconds.
    request_timeout: float = Field(default=10.0, gt=0, le=120)
    #: Forces reconciled at once (each holds a worker thread while it talks to a server).
    workers: int = Field(default=16, ge=1, le=256)
    #: Port of the liveness probe (/healthz); 0 serves none.
    health_port: int = Field(default=8080, ge=0, le=65535)
    #: Port of the Prometheus /metrics endpoint; 0 serves none.
    metrics_port: int = Field(default=9100, ge=0, le=65535)

    @field_validator("namespaces", "allowed_images", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @field_validator("peering", mode="before")
    @classmethod
    def _no_peering(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("cassandra_contact_points", "consumers_cassandra_contact_points")
    @classmethod
    def _contact_points(cls, value: str | None) -> str | None:
        if value is not None:
            parse_contact_points(value)
        return value

    @model_validator(mode="after")
    def _lake_admin(self) -> OperatorSettings:
        if self.lake_uri is not None and self.lake_uri.startswith("s3://"):
            if not self.lake_admin_access_key_id or not self.lake_admin_key().secret_access_key:
                raise ValueError(
                    "an s3:// lake needs its store's administrator, who gives each force its "
                    "own users: set PEACELAND_OPERATOR_LAKE_ADMIN_ACCESS_KEY_ID and "
                    "PEACELAND_OPERATOR_LAKE_ADMIN_SECRET_ACCESS_KEY (or its _FILE)"
                )
            LakeLocation.from_uri(self.lake_uri)
            open_storage(self.lake_uri, s3_keys=("check", "check"))  # options it may say
            if self.lake_iam_endpoint is None:
                iam_endpoint_of(self.lake_uri)  # one to be found, or say so now
        return self

    def lake_admin_key(self) -> S3Key:
        """The lake store's administrator key (its file read now)."""
        secret = secret_value(
            self.lake_admin_secret_access_key,
            self.lake_admin_secret_access_key_file,
            "the lake store's administrator secret",
        )
        return S3Key(self.lake_admin_access_key_id or "", secret or "")

    @property
    def lake_on_object_store(self) -> bool:
        """Whether the forces' lake is on an object store (their own users on it)."""
        return self.lake_uri is not None and self.lake_uri.startswith("s3://")

    @property
    def consumers_kafka(self) -> str:
        return self.consumers_kafka_bootstrap_servers or self.kafka_bootstrap_servers

    @property
    def consumers_cassandra(self) -> str:
        return self.consumers_cassandra_contact_points or self.cassandra_contact_points

    @property
    def consumers(self) -> tuple[str, ...]:
        """The consumers every force runs: the lake's too when there is a lake."""
        return (*CONSUMERS, LAKE) if self.lake_uri else CONSUMERS

    def kafka_config(self) -> Config:
        """librdkafka settings of the operator's admin client."""
        # The shared base: above all, asking about a force's topic never makes it.
        return client_config(self.kafka_access()) | {
            "socket.timeout.ms": str(int(self.request_timeout * 1000)),
            "log_level": "3",
        }
