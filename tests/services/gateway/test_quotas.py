"""A force's reports a second at the edge: a token bucket per force, refused whole with a
Retry-After that says when the request would pass."""

from __future__ import annotations

import pytest

from peaceland.services.gateway.quotas import OverQuota, ReportQuotas


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_force_may_send_its_burst_at_once_then_its_rate():
    clock = Clock()
    quotas = ReportQuotas(burst_seconds=10, clock=clock)
    quotas.set_rates({"lyon": 10})
    quotas.take("lyon", 100)  # ten seconds' worth at once
    with pytest.raises(OverQuota) as refused:
        quotas.take("lyon", 5)
    assert refused.value.retry_after == 1
    assert "10 reports a second" in str(refused.value)
    clock.now += 0.5
    quotas.take("lyon", 5)


def test_retry_after_says_when_the_request_would_pass():
    clock = Clock()
    quotas = ReportQuotas(burst_seconds=2, clock=clock)
    quotas.set_rates({"lyon": 10})
    quotas.take("lyon", 20)
    with pytest.raises(OverQuota) as refused:
        quotas.take("lyon", 15)
    assert refused.value.retry_after == 2
    clock.now += 2
    quotas.take("lyon", 15)


def test_a_batch_larger_than_the_bucket_passes_when_it_is_full_and_leaves_a_debt():
    clock = Clock()
    quotas = ReportQuotas(burst_seconds=1, clock=clock)
    quotas.set_rates({"lyon": 10})
    quotas.take("lyon", 1_000)
    clock.now += 50
    with pytest.raises(OverQuota):
        quotas.take("lyon", 1)  # 990 in debt: 99 s at 10 a second
    clock.now += 50
    quotas.take("lyon", 1)


def test_one_force_over_its_quota_leaves_the_others_alone():
    quotas = ReportQuotas(burst_seconds=1, clock=Clock())
    quotas.set_rates({"lyon": 1, "brest": 1_000})
    quotas.take("lyon", 1)
    with pytest.raises(OverQuota):
        quotas.take("lyon", 1)
    for _ in range(10):
        quotas.take("brest", 100)
    quotas.take("nantes", 10**9)  # no plan known: no limit here (Kafka's quota stands)


def test_a_force_no_longer_listed_loses_its_limit():
    quotas = ReportQuotas(burst_seconds=1, clock=Clock())
    quotas.set_rates({"lyon": 1})
    quotas.take("lyon", 1)
    quotas.set_rates({})
    quotas.take("lyon", 100)
