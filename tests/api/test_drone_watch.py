"""Each drone's last position, kept in the order drones moved; what changed encoded once a
second for every page; a force's reader shared by its users and stopped when none is left.
No server: a reader here points at a Kafka that is not there (it only retries)."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

from peaceland.api.drones import (
    DroneWatch,
    DroneWatches,
    LastPositions,
    PageDrones,
    position_out,
)
from peaceland.api.force_data import ForceData, ForceDataUnavailableError
from peaceland.api.routes.alerts import _page_drones
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.reports import DronePosition


def _now_ms() -> int:
    return int(time.time() * 1000)


def _at(drone: str, latitude: float) -> DronePosition:
    return DronePosition(
        version=1, drone_id=drone, timestamp=datetime.now(UTC), latitude=latitude, longitude=2.0
    )


def _heard(*positions: DronePosition, ms: int | None = None) -> list[tuple[DronePosition, int]]:
    """``positions`` as heard at ``ms`` (epoch ms; now by default)."""
    return [(p, _now_ms() if ms is None else ms) for p in positions]


def test_the_first_ask_gets_every_drone_newest_first_then_only_those_that_moved():
    positions = LastPositions()
    positions.record(_heard(_at("d-1", 1.0), _at("d-2", 2.0), _at("d-3", 3.0)))
    tick, everything = positions.since(0)
    assert [p.drone_id for p in everything] == ["d-3", "d-2", "d-1"]
    positions.record(_heard(_at("d-1", 1.5)))
    tick, moved = positions.since(tick)
    assert [(p.drone_id, p.latitude) for p in moved] == [("d-1", 1.5)]
    assert positions.since(tick) == (tick, [])
    assert len(positions) == 3


def test_past_its_bound_the_drone_silent_the_longest_is_forgotten():
    positions = LastPositions(most=2)
    positions.record(_heard(_at("d-1", 1.0), _at("d-2", 2.0)))
    positions.record(_heard(_at("d-1", 1.1), _at("d-3", 3.0)))
    _, kept = positions.since(0)
    assert [p.drone_id for p in kept] == ["d-3", "d-1"]


def test_drones_silent_since_before_the_cutoff_leave():
    positions = LastPositions()
    positions.record(_heard(_at("d-old", 1.0), ms=1_000))
    positions.record(_heard(_at("d-new", 2.0), ms=5_000))
    assert positions.expire(before_ms=2_000) == ["d-old"]
    assert [p.drone_id for p in positions.since(0)[1]] == ["d-new"]
    assert positions.expire(before_ms=2_000) == []


def test_a_position_is_given_with_its_report_time():
    position = _at("d-1", 48.5)
    assert position_out(position) == {
        "drone_id": "d-1",
        "latitude": 48.5,
        "longitude": 2.0,
        "reported_at": position.timestamp.isoformat(),
    }


def _watch(lookback: timedelta = timedelta(minutes=3)) -> DroneWatch:
    """A reader never started: its positions and frames only."""
    return DroneWatch("f-1", {}, "peaceland.f-1.reports", "fp", lookback, timeout=1)


def test_a_frame_says_once_what_moved_and_what_left_and_pages_follow_the_frames():
    watch = _watch(lookback=timedelta(minutes=3))
    an_hour_ago = _now_ms() - 3_600_000
    watch.positions.record(_heard(_at("d-old", 1.0), ms=an_hour_ago))
    watch.positions.record(_heard(_at("d-1", 1.0), _at("d-2", 2.0)))
    watch._frame()
    [frame] = watch.frames_after(0) or []
    data = json.loads(frame.data)
    assert data["gone"] == ["d-old"]  # heard of an hour ago: off the map
    assert sorted(d["drone_id"] for d in data["drones"]) == ["d-1", "d-2"]
    assert watch.frames_after(frame.number) == []
    # A page that comes now: everyone, and the frames after the last one follow.
    tick, chunks = watch.snapshot()
    assert tick == frame.number
    snapshot = json.loads(chunks[0])
    assert snapshot["reset"] is True
    assert sorted(d["drone_id"] for d in snapshot["drones"]) == ["d-1", "d-2"]
    watch._frame()  # nothing changed: no frame
    assert watch.frames_after(frame.number) == []
    watch.positions.record(_heard(_at("d-2", 2.5)))
    watch._frame()
    [second] = watch.frames_after(frame.number) or []
    assert [d["latitude"] for d in json.loads(second.data)["drones"]] == [2.5]
    assert watch.frames_after(0) == [frame, second]
    # Changes not framed yet go in a frame of their own before a snapshot: not sent twice.
    watch.positions.record(_heard(_at("d-3", 3.0)))
    tick, _ = watch.snapshot()
    [third] = watch.frames_after(second.number) or []
    assert third.number == tick
    assert watch.frames_after(12_345) is None  # not a frame made: a snapshot again


def test_drones_that_only_left_still_make_a_frame_pages_get():
    watch = _watch(lookback=timedelta(seconds=0.5))
    watch.positions.record(_heard(_at("d-1", 1.0), ms=int(time.time() * 1000)))
    number, _ = watch.snapshot()
    time.sleep(0.7)  # silent longer than the lookback; nothing else happens
    watch._frame()
    [frame] = watch.frames_after(number) or []
    assert json.loads(frame.data) == {"drones": [], "gone": ["d-1"]}


def test_drones_forgotten_past_the_bound_leave_the_pages_too():
    watch = _watch()
    watch.positions = LastPositions(most=2)
    number, _ = watch.snapshot()
    watch.positions.record(_heard(_at("d-1", 1.0), _at("d-2", 2.0), _at("d-3", 3.0)))
    watch._frame()
    [frame] = watch.frames_after(number) or []
    assert json.loads(frame.data)["gone"] == ["d-1"]


def test_many_pages_coming_at_once_leave_the_others_on_their_frames():
    watch = _watch()
    watch.positions.record(_heard(_at("d-1", 1.0)))
    early, _ = watch.snapshot()
    for n in range(50):  # fifty pages, each with a change before it
        watch.positions.record(_heard(_at(f"d-{n}", 2.0)))
        watch.snapshot()
    frames = watch.frames_after(early)
    assert frames is not None
    assert len(frames) == 50  # every change since, not a snapshot again


def test_a_large_fleets_snapshot_comes_in_chunks_and_only_the_first_resets():
    watch = _watch()
    watch.positions.record(_heard(*(_at(f"d-{n}", 1.0) for n in range(12_001))))
    _, chunks = watch.snapshot()
    sizes = [len(json.loads(c)["drones"]) for c in chunks]
    assert sizes == [5_000, 5_000, 2_001]
    assert [json.loads(c).get("reset", False) for c in chunks] == [True, False, False]


def test_an_empty_fleet_still_resets_a_pages_map():
    _, chunks = _watch().snapshot()
    assert [json.loads(c) for c in chunks] == [{"drones": [], "reset": True}]


def test_a_page_gets_a_snapshot_then_frames_at_most_once_a_frame():
    watch = _watch()
    watch.positions.record(_heard(_at("d-1", 1.0)))
    watches, _ = _registry(linger=60)
    page = PageDrones(watches, watch)
    first = asyncio.run(page.due())
    assert [d["drone_id"] for d in json.loads(first[0])["drones"]] == ["d-1"]
    assert asyncio.run(page.due()) == []  # less than a frame later


class _Data:
    """The force data a registry needs, pointing at no Kafka at all."""

    def __init__(self) -> None:
        self.fingerprint = "one"

    def fingerprint_of(self, force_id: str) -> str:
        assert force_id
        return self.fingerprint

    def consumer_config(self, force_id: str) -> dict[str, Any]:
        return {"bootstrap.servers": "127.0.0.1:1", "group.id": f"unused.{force_id}"}

    def resources(self, force_id: str) -> ForceResources:
        return resources_for(force_id)


def _registry(linger: float) -> tuple[DroneWatches, _Data]:
    data = _Data()
    return DroneWatches(cast(ForceData, data), linger=linger, timeout=0.2), data


def _until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "never true"
        time.sleep(0.05)


def test_users_of_a_force_share_one_reader_which_stops_once_the_last_is_gone_a_while():
    watches, _ = _registry(linger=0.3)
    try:
        one, two = watches.attach("f-1"), watches.attach("f-1")
        assert one is two
        watches.detach(one)
        time.sleep(0.5)
        assert watches.running() == ["f-1"]  # still used
        watches.detach(two)
        _until(lambda: watches.running() == [])
        one.join(10)
        assert not one._thread.is_alive()
    finally:
        watches.close()


def test_a_user_back_within_the_linger_keeps_the_same_reader():
    watches, _ = _registry(linger=0.5)
    try:
        first = watches.attach("f-1")
        watches.detach(first)
        again = watches.attach("f-1")
        assert again is first
        time.sleep(0.8)  # past the first linger: the timer was cancelled
        assert watches.running() == ["f-1"]
        watches.detach(again)
    finally:
        watches.close()


def test_new_credentials_get_a_reader_of_their_own_and_the_old_one_stops_with_its_last_user():
    watches, data = _registry(linger=60)
    try:
        old = watches.attach("f-1")
        data.fingerprint = "two"  # a rotation
        new = watches.attach("f-1")
        assert new is not old
        still_reading = old.alive  # its page still reads
        watches.detach(old)
        assert (still_reading, old.alive) == (True, False)  # then stopped at once
        assert new.alive
        watches.detach(new)
    finally:
        watches.close()


def test_a_reader_that_ended_is_replaced():
    watches, _ = _registry(linger=60)
    try:
        ended = watches.attach("f-1")
        ended.stop()
        fresh = watches.attach("f-1")
        assert fresh is not ended
        assert fresh.alive
    finally:
        watches.close()


def test_a_stopping_control_plane_stops_every_reader_and_starts_no_more():
    watches, _ = _registry(linger=60)
    readers = [watches.attach(f) for f in ("f-1", "f-2")]
    watches.close(timeout=10)
    assert all(not r._thread.is_alive() for r in readers)
    with pytest.raises(ForceDataUnavailableError, match="stopping"):
        watches.attach("f-3")
    for reader in readers:
        watches.detach(reader)  # after the close: nothing breaks


def test_a_feed_goes_on_without_drones_when_they_cannot_be_read():
    class Refusing:
        def attach(self, force_id: str) -> DroneWatch:
            raise RuntimeError(f"can't start new thread for {force_id}")

    assert asyncio.run(_page_drones(cast(DroneWatches, Refusing()), "f-1")) is None


def test_a_page_whose_reader_stays_in_trouble_follows_the_forces_new_one_once_it_is_ready():
    watches, data = _registry(linger=60)
    try:
        old = watches.attach("f-1")
        page = PageDrones(watches, old)
        asyncio.run(page.due())
        old.trouble = "authorization failed"  # its credentials were revoked
        data.fingerprint = "two"  # a rotation: the force's reader is a new one
        page._trouble_since = time.monotonic() - PageDrones.TROUBLE_SECONDS - 1
        page._at = 0.0
        asyncio.run(page.due())
        assert page.watch is old  # the new reader has not caught up: not yet
        [new] = [w for w in watches._watches.values()]
        assert new is not old
        assert new.users == 0  # tried, and let go
        new.ready.set()
        page._trouble_since = time.monotonic() - PageDrones.TROUBLE_SECONDS - 1
        page._at = 0.0
        events = asyncio.run(page.due())
        assert page.watch is new
        assert json.loads(events[0])["reset"] is True  # a snapshot of the new reader
        assert (old.users, new.users) == (0, 1)
        page.close()
        assert new.users == 0
    finally:
        watches.close()
