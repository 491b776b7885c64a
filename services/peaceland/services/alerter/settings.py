"""Settings of the alerting consumer. Environment: ``PEACELAND_ALERTER_<NAME>``."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import ClassVar

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from peaceland.services.settings import ConsumerSettings
from peaceland.tenants.environment import env_prefix
from peaceland.tenants.forces import AlertingSettings, ForceSettings


class AlerterSettings(ConsumerSettings):
    model_config = SettingsConfigDict(env_prefix=env_prefix("alerter"), extra="ignore")
    consumer_name: ClassVar[str] = "alerter"

    #: The force's settings file (its ConfigMap); re-read when it changes. Without it, the
    #: three settings below apply.
    settings_file: Path | None = None
    score_threshold: float = Field(default=20.0, ge=0, le=100)
    dedup_window_seconds: int = Field(default=600, ge=0)
    kafka_retention_hours: int = Field(default=168, ge=1, le=8_760)
    #: Names this replica in logs and in the slot it holds (its pod's name).
    instance: str = Field(
        default_factory=lambda: os.environ.get("HOSTNAME") or socket.gethostname()
    )
    #: Replicas of the force's alerter Deployment: the alerter slots there are (each
    #: replica holds one, and names its Kafka transactions after it).
    replicas: int = Field(default=1, ge=1, le=100)
    #: Seconds an alerter slot stays held without renewal: how long a replica replacing a
    #: dead one waits before it takes the dead one's slot and fences its transaction.
    slot_lease_seconds: float = Field(default=10.0, ge=1, le=300)
    #: Seconds a Kafka transaction may stay open, and the longest any call to the
    #: transaction coordinator blocks: a transaction left open by a replica that died and
    #: was not replaced holds readers this long at most (a replacement fences it at once).
    #: Long enough for a partition's leadership to move when a broker is lost: its alert
    #: events wait that long for a leader.
    transaction_timeout: float = Field(default=30.0, ge=1, le=900)
    #: Most sightings below the threshold decided in one batch (and one transaction): the
    #: rest of the batch waits for the next. Bounds a transaction, and the time away from
    #: polling, whatever the reports hold.
    max_sightings_per_batch: int = Field(default=1_000, ge=1, le=100_000)
    #: Seconds without a heartbeat before the group gives a replica's partitions to another.
    session_timeout: float = Field(default=10.0, ge=6, le=300)
    poll_timeout: float = Field(default=0.1, gt=0, le=10)
    retry_backoff: float = Field(default=0.2, gt=0)
    retry_backoff_max: float = Field(default=5.0, gt=0)
    metrics_port: int = Field(default=9102, ge=0, le=65535)
    #: Batches that raise nothing commit their offsets with the next transaction, or at
    #: most this many seconds later: an alert never waits for an empty transaction.
    commit_interval: float = Field(default=1.0, gt=0, le=60)

    def default_settings(self) -> ForceSettings:
        """The force's settings when there is no settings file."""
        return ForceSettings(
            force_id=self.force_id,
            alerting=AlertingSettings(
                score_threshold=self.score_threshold,
                dedup_window_seconds=self.dedup_window_seconds,
            ),
            kafka_retention_hours=self.kafka_retention_hours,
        )
