"""Valid reports for tests, deterministic from a seed."""

from __future__ import annotations

import random
import uuid
from datetime import datetime, timedelta

from peaceland.tenants.reports import Citizen, Report, utc_now

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
