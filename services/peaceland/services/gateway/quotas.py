"""Each force's reports a second, as its plan says, enforced where reports come in.

A token bucket per force: it fills at the plan's rate and holds ``burst_seconds`` of it, so a
drone back in radio range may empty its buffer in one batch while the force's sustained rate
stays bounded. A request takes one token per report it would send; without enough, it is
refused whole with 429 and ``Retry-After`` (nothing of it is sent, nothing silently dropped).
A batch larger than the whole bucket is taken when the bucket is full, leaving it in debt,
so that the largest valid batch always gets through eventually. Kafka's produce quota on the
force's principal (set by the operator from the same plan) stands behind it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


class OverQuota(Exception):  # noqa: N818 - an answer, not a failure
    def __init__(self, force_id: str, rate: int, retry_after: int) -> None:
        self.retry_after = retry_after
        super().__init__(
            f"police force {force_id} sends more than its plan's {rate} reports a second; "
            f"send again in {retry_after} s"
        )


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class ReportQuotas:
    """Token buckets by force. Used from one event loop: no lock needed."""

    burst_seconds: float = 10.0
    clock: Callable[[], float] = time.monotonic
    _rates: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def set_rates(self, rates: dict[str, int]) -> None:
        """Every force's rate (a force absent has no limit here)."""
        self._rates = dict(rates)
        for force_id in list(self._buckets):
            if force_id not in rates:
                del self._buckets[force_id]

    def take(self, force_id: str, reports: int) -> None:
        """Take ``reports`` tokens of the force's bucket, or raise OverQuota."""
        rate = self._rates.get(force_id)
        if rate is None or reports <= 0:
            return
        capacity = rate * self.burst_seconds
        now = self.clock()
        bucket = self._buckets.get(force_id)
        if bucket is None:
            bucket = self._buckets[force_id] = _Bucket(capacity, now)
        bucket.tokens = min(capacity, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        needed = min(reports, capacity)
        if bucket.tokens < needed:
            raise OverQuota(force_id, rate, max(1, math.ceil((needed - bucket.tokens) / rate)))
        bucket.tokens -= reports
