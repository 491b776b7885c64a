"""Percentile statistics of measured durations."""

from __future__ import annotations

import statistics


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and max of ``values`` (sorted ascending), rounded to 0.01."""
    if not values:
        return {"p50": None, "p95": None, "p99": None, "max": None}
    if len(values) == 1:  # statistics.quantiles needs two points on Python 3.11
        only = round(values[0], 2)
        return {"p50": only, "p95": only, "p99": only, "max": only}
    quantiles = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50": round(quantiles[49], 2),
        "p95": round(quantiles[94], 2),
        "p99": round(quantiles[98], 2),
        "max": round(values[-1], 2),
    }
