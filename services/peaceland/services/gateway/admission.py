"""How much of the gateway one force may hold at once: bytes of requests in flight.

A request reserves its declared size before its body is read and keeps it until Kafka has
acknowledged its reports (or not). A force past its own share gets a 429 at once, so that a
flood from one force, or one force's reports waiting behind a broker in trouble, never fills
the producer's queue, the memory or the event loop that the other forces share; the total
share bounds what all forces together may hold.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


class Refused(Exception):  # noqa: N818 - an answer, not a failure
    """No room for this request now: the reason says whose share is used up."""


@dataclass
class Admission:
    """Bytes in flight, per force and in all. Used from one event loop: no lock needed."""

    per_force_bytes: int
    total_bytes: int

    def __post_init__(self) -> None:
        self._by_force: defaultdict[str, int] = defaultdict(int)
        self._total = 0

    @contextmanager
    def hold(self, force_id: str, size: int) -> Iterator[None]:
        """Hold ``size`` bytes for ``force_id`` while the block runs; Refused if no room.

        A request larger than a whole share is admitted when its force holds nothing else,
        so that the largest valid body always gets through eventually.
        """
        held = self._by_force[force_id]
        if held and held + size > self.per_force_bytes:
            raise Refused(
                f"police force {force_id} has {held} bytes of reports in flight already (its "
                f"share is {self.per_force_bytes}); send again in a moment"
            )
        if self._total and self._total + size > self.total_bytes:
            raise Refused("the gateway is at capacity; send again in a moment")
        self._by_force[force_id] += size
        self._total += size
        try:
            yield
        finally:
            self._by_force[force_id] -= size
            self._total -= size
            if not self._by_force[force_id]:
                del self._by_force[force_id]
