"""Judging a consumer group's progress from its offsets (pure logic, no server)."""

from __future__ import annotations

from peaceland.operator.progress import Offsets, Seen, judge
from peaceland.operator.reconcile import Step, transitions


def test_a_group_with_nothing_waiting_is_never_still():
    assert judge(None, Offsets(committed=10, lag=0), at=5.0) == Seen(10, None)
    assert judge(Seen(10, 1.0), Offsets(committed=10, lag=0), at=5.0) == Seen(10, None)


def test_a_group_is_still_from_the_first_check_that_finds_it_behind_without_moving():
    first = judge(None, Offsets(committed=10, lag=3), at=5.0)
    assert first == Seen(10, 5.0)
    assert judge(first, Offsets(committed=10, lag=8), at=9.0) == Seen(10, 5.0)


def test_a_commit_ends_the_stillness_even_with_reports_still_waiting():
    still = Seen(10, 5.0)
    assert judge(still, Offsets(committed=12, lag=8), at=9.0) == Seen(12, None)
    # ... and the next check without a commit starts counting again from there.
    assert judge(Seen(12, None), Offsets(committed=12, lag=8), at=11.0) == Seen(12, 11.0)


def _progressing(ok: bool, reason: str) -> Step:
    return Step("ConsumersProgressing", ok, reason, "message")


def test_a_stall_and_a_recovery_each_post_one_event():
    ok = [{"type": "ConsumersProgressing", "status": "True"}]
    stalled = [{"type": "ConsumersProgressing", "status": "False"}]
    [event] = transitions(ok, [_progressing(False, "ArchiverStalled")])
    assert (event.type, event.reason) == ("Warning", "ArchiverStalled")
    assert transitions(stalled, [_progressing(False, "ArchiverStalled")]) == []
    [event] = transitions(stalled, [_progressing(True, "Progressing")])
    assert (event.type, event.reason) == ("Normal", "ConsumersRecovered")
    assert transitions(ok, [_progressing(True, "Progressing")]) == []
