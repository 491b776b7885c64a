"""Valid reports (deterministic from a seed) and alert events for tests."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from peaceland.tenants.alerts import Alert, AlertEventKind, alert_id_for
from peaceland.tenants.reports import Citizen, Report, encode_report, utc_now

WORDS = ("calme", "foule", "police", "manifestation", "rue", "bonjour", "vite", "attention")
NAMES = ("Alice Martin", "Bruno Petit", "Chloé Durand", "Djamel Haddad", "Élodie Roux")


def make_report(
    rng: random.Random,
    *,
    at: datetime | None = None,
    drone: int | None = None,
    citizens: int | None = None,
) -> Report:
    """A valid report over Paris with a few citizens and words."""
    count = rng.randint(0, 5) if citizens is None else citizens
    return Report(
        report_id=uuid.UUID(int=rng.getrandbits(128), version=4),
        drone_id=f"drone-{rng.randint(0, 49) if drone is None else drone:03d}",
        timestamp=(at or utc_now()) - timedelta(seconds=rng.randint(0, 600)),
        latitude=48.8566 + rng.uniform(-0.05, 0.05),
        longitude=2.3522 + rng.uniform(-0.08, 0.08),
        citizens=[
            Citizen(name=rng.choice(NAMES), score=round(rng.uniform(0, 100), 2))
            for _ in range(count)
        ],
        words=[rng.choice(WORDS) for _ in range(rng.randint(0, 8))],
    )


def make_alert(
    force_id: str,
    citizen: str,
    at: datetime,
    *,
    event: AlertEventKind = "raised",
    report_id: uuid.UUID | None = None,
    latitude: float = 48.85,
    longitude: float = 2.35,
    drone_id: str = "d-1",
    score: float = 1.0,
) -> Alert:
    """An alert event as the alerter writes it on the alerts topic."""
    report = report_id or uuid.uuid4()
    return Alert(
        event=event,
        alert_id=alert_id_for(force_id, citizen, report),
        force_id=force_id,
        citizen=citizen,
        score=score,
        drone_id=drone_id,
        report_id=report,
        latitude=latitude,
        longitude=longitude,
        reported_at=at,
        opened_at=at,
        raised_at=at,
    )


def report_of(drone: str, latitude: float, longitude: float) -> bytes:
    """The wire format of a report of ``drone`` at a position, timestamped now."""
    report = make_report(random.Random(), citizens=0).model_copy(
        update={
            "drone_id": drone,
            "latitude": latitude,
            "longitude": longitude,
            "timestamp": utc_now(),
        }
    )
    return encode_report(report)
