"""The consumers' lag growth over a run, from its samples."""

from __future__ import annotations

from peaceland.loadgen.lag import lag_growth


def _samples(
    archiver_per_s: float, alerter_per_s: float, seconds: int = 30
) -> list[dict[str, float]]:
    wobble = [0, 300, -200, 450, -100]  # a batch committed or not yet at the sample
    return [
        {
            "seconds": float(t),
            "end_offset": 1000 * t,
            "archiver": max(0, round(archiver_per_s * t) + wobble[t % 5] + 500),
            "alerter": max(0, round(alerter_per_s * t) + wobble[(t + 2) % 5] + 500),
        }
        for t in range(seconds + 1)
    ]


def test_a_backlog_that_grows_is_told_from_one_that_only_wobbles() -> None:
    growth = lag_growth(_samples(150, 0), since=5, until=30)
    assert growth["archiver"] is not None
    assert growth["alerter"] is not None
    assert 120 <= growth["archiver"] <= 180  # 150 records a second behind
    assert abs(growth["alerter"]) <= 30  # keeps up, whatever its commits' rhythm


def test_too_few_samples_say_nothing() -> None:
    assert lag_growth(_samples(150, 0, seconds=3), since=0, until=3) == {
        "archiver": None,
        "alerter": None,
    }
