"""Judging a consumer group's progress from its offsets (pure logic, no server)."""

from __future__ import annotations

from peaceland.operator.conditions import transitions
from peaceland.operator.progress import Offsets, Progress, Seen, judge
from peaceland.operator.results import Step
from peaceland.tenants.policeforce import Condition


def test_a_group_with_nothing_waiting_is_never_still():
    assert judge(None, Offsets(committed=10, lag=0), at=5.0) == Seen(10, None)
    assert judge(Seen(10, 1.0), Offsets(committed=10, lag=0), at=5.0) == Seen(10, None)


def test_a_group_is_still_from_the_first_check_that_finds_it_behind_without_moving():
    first = judge(None, Offsets(committed=10, lag=3), at=5.0)
    assert first == Seen(10, 5.0)
    assert judge(first, Offsets(committed=10, lag=8), at=9.0) == Seen(10, 5.0)


def test_a_commit_restarts_the_count_from_its_own_moment():
    still = Seen(10, 5.0)
    # The offset moved between the checks: still only since this check, not before.
    assert judge(still, Offsets(committed=12, lag=8), at=9.0) == Seen(12, 9.0)
    assert judge(Seen(12, 9.0), Offsets(committed=12, lag=8), at=11.0) == Seen(12, 9.0)


def test_one_stuck_partition_stalls_its_group_while_the_others_commit():
    progress = Progress(stall_after=10.0)
    for at, moving in ((0.0, 1), (6.0, 2), (12.0, 3)):
        progress.seen[("archiver", 0)] = judge(
            progress.seen.get(("archiver", 0)), Offsets(committed=moving, lag=5), at
        )
        progress.seen[("archiver", 1)] = judge(
            progress.seen.get(("archiver", 1)), Offsets(committed=7, lag=5), at
        )
    assert progress.seen[("archiver", 0)] == Seen(3, 12.0)
    assert progress.seen[("archiver", 1)] == Seen(7, 0.0)  # still for 12 s: past 10 s


def _progressing(ok: bool, reason: str) -> Step:
    return Step("ConsumersProgressing", ok, reason, "message")


def test_a_stall_and_a_recovery_each_post_one_event():
    ok = [Condition(type="ConsumersProgressing", status="True", reason="Progressing")]
    stalled = [Condition(type="ConsumersProgressing", status="False", reason="ArchiverStalled")]
    [event] = transitions(ok, [_progressing(False, "ArchiverStalled")])
    assert (event.type, event.reason) == ("Warning", "ArchiverStalled")
    assert transitions(stalled, [_progressing(False, "ArchiverStalled")]) == []
    [event] = transitions(stalled, [_progressing(True, "Progressing")])
    assert (event.type, event.reason) == ("Normal", "ConsumersRecovered")
    assert transitions(ok, [_progressing(True, "Progressing")]) == []
