"""Percentiles of measured durations."""

from __future__ import annotations

from peaceland.loadgen.stats import percentiles


def test_percentiles_of_a_hundred_values_are_the_expected_ranks():
    values = [float(v) for v in range(1, 101)]
    result = percentiles(values)
    assert result["max"] == 100.0
    assert 50.0 <= (result["p50"] or 0) <= 51.0
    assert 95.0 <= (result["p95"] or 0) <= 96.0
    assert 99.0 <= (result["p99"] or 0) <= 100.0


def test_no_values_have_no_percentiles():
    assert percentiles([]) == {"p50": None, "p95": None, "p99": None, "max": None}


def test_a_single_measurement_is_every_percentile():
    # A run that raised one alert measured one latency: it must be reported, not crash.
    assert percentiles([42.0]) == {"p50": 42.0, "p95": 42.0, "p99": 42.0, "max": 42.0}
