"""The ground truth of a simulated run: what was sent, and what the platform must make of it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, date

from peaceland.tenants.reports import Report


@dataclass
class GroundTruth:
    """What the simulator sent and what the platform must make of it."""

    threshold: float
    sent: int = 0
    accepted: int = 0
    rejected: int = 0
    raw_bytes: int = 0
    #: When each accepted report was acknowledged (wall clock, seconds).
    accepted_at: dict[uuid.UUID, float] = field(default_factory=dict)
    #: When the first request that carried each accepted report was sent (wall clock,
    #: seconds; through the gateway only).
    posted_at: dict[uuid.UUID, float] = field(default_factory=dict)
    #: (report, citizen) of every sighting below the threshold: one alert event each.
    low_sightings: set[tuple[uuid.UUID, str]] = field(default_factory=set)
    low_citizens: set[str] = field(default_factory=set)
    #: Where each report belongs in Cassandra (drone, UTC day), to read it back.
    partitions: dict[uuid.UUID, tuple[str, date]] = field(default_factory=dict)

    def record(self, report: Report, raw: bytes) -> None:
        self.sent += 1
        self.raw_bytes += len(raw)
        self.partitions[report.report_id] = (
            report.drone_id,
            report.timestamp.astimezone(UTC).date(),
        )
        for citizen in report.citizens:
            if citizen.score < self.threshold:
                self.low_sightings.add((report.report_id, citizen.name))
                self.low_citizens.add(citizen.name)

    def expected_alerts(self) -> int:
        """Alerts to raise when the dedup window spans the whole run: one per citizen."""
        return len(self.low_citizens)
