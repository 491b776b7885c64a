"""A police force's identity and the names of the resources that hold its data.

A force is identified by a Kubernetes-style name (``lyon-metropole``). Every resource of a
force is named from that id alone, here and nowhere else, so the operator that creates
them, the services that use them and the API that reports on them always agree, and one
force's names can never collide with another's.
"""

from __future__ import annotations

import re
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Final

from pydantic import BaseModel, ConfigDict, Field

from peaceland.tenants.errors import InvalidForceIdError
from peaceland.tenants.reports import SCORE_MAX, SCORE_MIN

# A DNS-1123 label (what Kubernetes takes as a resource name), short enough that the
# keyspace name below stays within Cassandra's 48-character limit.
MAX_FORCE_ID_LENGTH: Final = 40
_FORCE_ID: Final = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
TOPIC_PREFIX: Final = "peaceland"
KEYSPACE_PREFIX: Final = "pf_"


@dataclass(frozen=True, slots=True)
class ForceResources:
    """Where one police force's data lives."""

    force_id: str
    reports_topic: str
    alerts_topic: str
    dead_letter_topic: str
    #: Each alert's lifecycle (acknowledged, assigned, resolved, notes), written by the
    #: control plane for the force's officers.
    lifecycle_topic: str
    keyspace: str

    @property
    def topics(self) -> tuple[str, str, str, str]:
        return (
            self.reports_topic,
            self.alerts_topic,
            self.dead_letter_topic,
            self.lifecycle_topic,
        )


def validate_force_id(force_id: str) -> str:
    """Return ``force_id`` if it can name a force's resources, else raise InvalidForceIdError."""
    if not 0 < len(force_id) <= MAX_FORCE_ID_LENGTH or not _FORCE_ID.match(force_id):
        raise InvalidForceIdError(
            f"invalid police force id {force_id!r}: use 1 to {MAX_FORCE_ID_LENGTH} lowercase "
            "letters, digits and '-', starting and ending with a letter or digit"
        )
    return force_id


def resources_for(force_id: str) -> ForceResources:
    """The names of every resource of the force ``force_id``.

    Topic names keep the id as it is; the keyspace replaces '-' by '_' (Cassandra takes
    only letters, digits and '_'), which stays one-to-one because ids hold no '_'.
    """
    validate_force_id(force_id)
    base = f"{TOPIC_PREFIX}.{force_id}"
    return ForceResources(
        force_id=force_id,
        reports_topic=f"{base}.reports",
        alerts_topic=f"{base}.alerts",
        dead_letter_topic=f"{base}.dead-letter",
        lifecycle_topic=f"{base}.lifecycle",
        keyspace=KEYSPACE_PREFIX + force_id.replace("-", "_"),
    )


def consumer_group(force_id: str, consumer: str) -> str:
    """The Kafka consumer group of one of the force's consumers (``archiver``,
    ``alerter``): its replicas share it, and the operator watches its progress."""
    return f"{TOPIC_PREFIX}.{validate_force_id(force_id)}.{consumer}"


#: Buckets of citizens per day in the sightings table: enough to keep a bucket's day of a
#: first-wave force near 6 MB (16,000 sightings a second), few enough to amortise each
#: partition's overhead. Changing it moves every citizen to another bucket: a new table.
SIGHTING_BUCKETS: Final = 4_096


def sighting_bucket(citizen: str) -> int:
    """The bucket of the sightings table that holds ``citizen``'s rows, on every day."""
    return zlib.crc32(citizen.encode()) % SIGHTING_BUCKETS


class AlertingSettings(BaseModel):
    """When a force's alerts are raised. Changeable while consumers run (see SettingsFile)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    #: A citizen whose score is strictly below this raises an alert.
    score_threshold: Annotated[float, Field(ge=SCORE_MIN, le=SCORE_MAX)] = 20.0
    #: One alert per citizen within this many seconds of the sighting that opened it: later
    #: sightings update that alert instead of raising another.
    dedup_window_seconds: Annotated[int, Field(ge=0, le=7 * 86_400)] = 600


class ForceSettings(BaseModel):
    """A police force's run-time settings, shared by its consumers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    force_id: str
    alerting: AlertingSettings = AlertingSettings()
    #: How long reports, sightings and alerts are kept in Cassandra.
    retention_days: Annotated[int, Field(ge=1, le=3_650)] = 30
    #: How long Kafka keeps the force's records (its topics' retention): how late a consumer
    #: that was down may still read a report, which the alerter's dedup state must outlive.
    kafka_retention_hours: Annotated[int, Field(ge=1, le=8_760)] = 168

    @classmethod
    def read(cls, path: Path) -> ForceSettings:
        """Settings from a JSON file, such as the force's ConfigMap mounted in a pod."""
        return cls.model_validate_json(path.read_bytes())
