"""Each drone's last position, kept in the order drones moved: a page gets the whole fleet
once, then only what moved."""

from __future__ import annotations

from datetime import UTC, datetime

from peaceland.api.drones import LastPositions, position_out
from peaceland.tenants.reports import DronePosition


def _at(drone: str, latitude: float) -> DronePosition:
    return DronePosition(
        version=1, drone_id=drone, timestamp=datetime.now(UTC), latitude=latitude, longitude=2.0
    )


def test_the_first_ask_gets_every_drone_newest_first_then_only_those_that_moved():
    positions = LastPositions()
    positions.record([_at("d-1", 1.0), _at("d-2", 2.0), _at("d-3", 3.0)])
    tick, everything = positions.since(0)
    assert [p.drone_id for p in everything] == ["d-3", "d-2", "d-1"]
    positions.record([_at("d-1", 1.5)])
    tick, moved = positions.since(tick)
    assert [(p.drone_id, p.latitude) for p in moved] == [("d-1", 1.5)]
    assert positions.since(tick) == (tick, [])
    assert len(positions) == 3


def test_past_its_bound_the_drone_silent_the_longest_is_forgotten():
    positions = LastPositions(most=2)
    positions.record([_at("d-1", 1.0), _at("d-2", 2.0)])
    positions.record([_at("d-1", 1.1), _at("d-3", 3.0)])
    _, kept = positions.since(0)
    assert [p.drone_id for p in kept] == ["d-3", "d-1"]


def test_a_position_is_given_with_its_report_time():
    position = _at("d-1", 48.5)
    out = position_out(position)
    assert out == {
        "drone_id": "d-1",
        "latitude": 48.5,
        "longitude": 2.0,
        "reported_at": position.timestamp.isoformat(),
    }
