"""The PoliceForce resource: what a police force buys, as Kubernetes sees it.

One source of truth: the CRD in ``crds/`` is generated from these models
(:func:`peaceland.tenants.crd.custom_resource_definition`) and a test fails when the two
drift apart. Field names are camelCase on the wire, as Kubernetes resources are.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from peaceland.tenants.forces import AlertingSettings, ForceSettings
from peaceland.tenants.provisioning.keyspace import Replication
from peaceland.tenants.provisioning.topics import TopicSettings
from peaceland.tenants.reports import SCORE_MAX, SCORE_MIN

GROUP: Final = "peaceland.io"
VERSION: Final = "v1alpha1"
KIND: Final = "PoliceForce"
PLURAL: Final = "policeforces"
SHORT_NAME: Final = "pf"

_SPEC = ConfigDict(extra="forbid", alias_generator=to_camel, populate_by_name=True, frozen=True)


class Plan(BaseModel):
    """What the force bought: the ceilings the platform enforces."""

    model_config = _SPEC

    max_drones: Annotated[int, Field(ge=1, le=100_000, description="Drones the force may fly.")]
    max_reports_per_second: Annotated[
        int,
        Field(ge=1, le=1_000_000, description="Sustained reports a second the gateway accepts."),
    ]


class Alerting(BaseModel):
    """When alerts are raised; applied to running consumers without a redeploy."""

    model_config = _SPEC

    score_threshold: Annotated[
        float,
        Field(
            ge=SCORE_MIN,
            le=SCORE_MAX,
            description="A citizen whose score is below this raises an alert (scores run 0-100).",
        ),
    ] = 20.0
    dedup_window_seconds: Annotated[
        int,
        Field(
            ge=0,
            le=7 * 86_400,
            description="One alert per citizen within this many seconds of the sighting that "
            "opened it; later sightings update it.",
        ),
    ] = 600


class Kafka(BaseModel):
    """The force's topics."""

    model_config = ConfigDict(
        **_SPEC,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.partitions >= oldSelf.partitions",
                    "message": "partitions may grow, never shrink (Kafka cannot remove partitions)",
                }
            ]
        },
    )

    partitions: Annotated[
        int,
        Field(
            ge=1,
            le=1_000,
            description=(
                "Partitions of each topic: the most consumer replicas that share the work."
            ),
        ),
    ] = 6
    replication_factor: Annotated[
        int,
        Field(
            ge=1,
            le=5,
            description=(
                "Copies of every record. 3 in production: an acknowledged record then survives the "
                "loss of a broker."
            ),
        ),
    ] = 3
    retention_hours: Annotated[
        int,
        Field(
            ge=1,
            le=8_760,
            description=(
                "Hours Kafka keeps records: how far back consumers can replay after an outage. "
                "Cassandra keeps the archive (retentionDays)."
            ),
        ),
    ] = 168


class Cassandra(BaseModel):
    """The force's keyspace."""

    model_config = ConfigDict(
        **_SPEC,
        json_schema_extra={
            "x-kubernetes-validations": [
                {
                    "rule": "self.replicationStrategy != 'NetworkTopologyStrategy' || "
                    "size(self.dataCenters) > 0",
                    "message": "NetworkTopologyStrategy needs at least one entry in dataCenters",
                }
            ]
        },
    )

    replication_strategy: Annotated[
        Literal["SimpleStrategy", "NetworkTopologyStrategy"],
        Field(
            description="SimpleStrategy for one data centre; NetworkTopologyStrategy, with "
            "dataCenters, for several."
        ),
    ] = "SimpleStrategy"
    replication_factor: Annotated[
        int, Field(ge=1, le=9, description="Copies of each row, with SimpleStrategy.")
    ] = 3
    data_centers: Annotated[
        dict[str, Annotated[int, Field(ge=1, le=9)]],
        Field(
            description="Copies of each row per data centre, with NetworkTopologyStrategy.",
        ),
    ] = {}


class Resources(BaseModel):
    """Compute for each consumer pod, in Kubernetes quantities."""

    model_config = _SPEC

    requests: dict[str, str] = {"cpu": "250m", "memory": "256Mi"}
    limits: dict[str, str] = {"memory": "512Mi"}


class Consumers(BaseModel):
    """The force's alerting and archiving consumer Deployments."""

    model_config = _SPEC

    replicas: Annotated[
        int,
        Field(
            ge=1,
            le=100,
            description=("Pods of each consumer; more than the topics' partitions would idle."),
        ),
    ] = 1
    image: Annotated[
        str,
        Field(
            min_length=1, max_length=512, description=("Container image of the PeaceLand services.")
        ),
    ] = "peaceland/services:0.1.0"
    resources: Resources = Resources()


class Credentials(BaseModel):
    """The force's identities on Kafka and Cassandra, which the operator issues."""

    model_config = _SPEC

    rotation: Annotated[
        int,
        Field(
            ge=0,
            le=1_000_000,
            description=(
                "Change it to rotate every credential of the force: new Kafka principals and "
                "Cassandra role beside the old, the consumers rolled onto them, then the old "
                "ones removed."
            ),
        ),
    ] = 0


class PoliceForceSpec(BaseModel):
    """The desired state of a police force."""

    model_config = _SPEC

    display_name: Annotated[
        str,
        Field(min_length=1, max_length=100, description="The force's name, as officers read it."),
    ]
    plan: Plan
    alerting: Alerting = Alerting()
    retention_days: Annotated[
        int, Field(ge=1, le=3_650, description=("Days reports, sightings and alerts are kept."))
    ] = 30
    kafka: Kafka = Kafka()
    cassandra: Cassandra = Cassandra()
    consumers: Consumers = Consumers()
    credentials: Credentials = Credentials()
    deletion_policy: Annotated[
        Literal["Retain", "Delete"],
        Field(
            description=(
                "On deletion of the resource: Delete removes the topics and the keyspace; Retain "
                "keeps the data."
            )
        ),
    ] = "Retain"

    def topic_settings(self) -> TopicSettings:
        """How the force's topics are laid out. An acknowledged record is on two brokers
        whenever there are copies to spare."""
        return TopicSettings(
            partitions=self.kafka.partitions,
            replication_factor=self.kafka.replication_factor,
            retention_ms=self.kafka.retention_hours * 3_600_000,
            min_insync_replicas=min(2, self.kafka.replication_factor - 1) or 1,
        )

    def replication(self) -> Replication:
        """How the force's keyspace is replicated."""
        return Replication(
            strategy=self.cassandra.replication_strategy,
            factor=self.cassandra.replication_factor,
            data_centers=dict(self.cassandra.data_centers),
        )

    def force_settings(self, force_id: str) -> ForceSettings:
        """The run-time settings the force's consumers read (their ConfigMap)."""
        return ForceSettings(
            force_id=force_id,
            alerting=AlertingSettings(
                score_threshold=self.alerting.score_threshold,
                dedup_window_seconds=self.alerting.dedup_window_seconds,
            ),
            retention_days=self.retention_days,
            kafka_retention_hours=self.kafka.retention_hours,
        )


ConditionType = Literal[
    "Ready",
    "TopicsReady",
    "KeyspaceReady",
    "CredentialsReady",
    "ConsumersReady",
    "ConsumersProgressing",
]


class Condition(BaseModel):
    model_config = _SPEC

    type: ConditionType
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[str, Field(max_length=128)]
    message: Annotated[str, Field(max_length=4_096)] = ""
    last_transition_time: str | None = None


class ForceUsage(BaseModel):
    """What a force uses, measured by the operator; the control plane bills it per day."""

    model_config = _SPEC

    #: When the operator measured (RFC 3339, UTC).
    measured_at: str
    #: Bytes of the force's keyspace on disk, every replica counted, summed over the
    #: Cassandra nodes (Cassandra's ``system_views.disk_usage``: whole MiB per table,
    #: rounded up); None until every node has answered once.
    storage_bytes: Annotated[int, Field(ge=0)] | None = None


class PoliceForceStatus(BaseModel):
    """What the operator observed and did; written only by the operator."""

    model_config = _SPEC

    phase: Literal["Pending", "Provisioning", "Ready", "Degraded", "Failed", "Deleting"] = "Pending"
    observed_generation: int | None = None
    conditions: list[Condition] = []
    reports_topic: str | None = None
    alerts_topic: str | None = None
    dead_letter_topic: str | None = None
    lifecycle_topic: str | None = None
    keyspace: str | None = None
    usage: ForceUsage | None = None


def spec_from(resource_spec: dict[str, Any]) -> PoliceForceSpec:
    """The typed spec of a PoliceForce as the API server returns it."""
    return PoliceForceSpec.model_validate(resource_spec)
