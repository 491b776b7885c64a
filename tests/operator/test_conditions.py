"""A force's status from its steps' results: conditions, Ready, phase and the Events of a
stall or recovery (pure logic, no server)."""

from __future__ import annotations

from datetime import UTC, datetime

from peaceland.operator.conditions import (
    conditions,
    merge_step,
    phase,
    read_status,
    status_after,
    transitions,
    wire,
)
from peaceland.operator.results import Force, Outcome, Step
from peaceland.tenants.policeforce import (
    Condition,
    ConditionType,
    ForceUsage,
    Plan,
    PoliceForceSpec,
    PoliceForceStatus,
)

EARLIER = datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC)
NOW = datetime(2030, 1, 2, 3, 9, 0, tzinfo=UTC)
EARLIER_STAMP = "2030-01-02T03:04:05Z"
NOW_STAMP = "2030-01-02T03:09:00Z"


def _force(generation: int = 3) -> Force:
    spec = PoliceForceSpec(
        display_name="Lyon", plan=Plan(max_drones=10, max_reports_per_second=100)
    )
    return Force("lyon-metropole", "police", "uid-1", generation, spec)


def _ok(condition: ConditionType = "TopicsReady", reason: str = "TopicsUpToDate") -> Step:
    return Step(condition, True, reason, f"{condition} fine")


def _failed(condition: ConditionType, reason: str, retry: bool = False) -> Step:
    return Step(condition, False, reason, f"{condition} broken", retry)


def _all_ok() -> list[Step]:
    return [
        _ok("TopicsReady", "TopicsUpToDate"),
        _ok("KeyspaceReady", "KeyspaceUpToDate"),
        _ok("ConsumersReady", "Available"),
    ]


def _by_type(conds: list[Condition]) -> dict[str, Condition]:
    return {c.type: c for c in conds}


# ------------------------------------------------------------------ conditions and Ready


def test_every_step_ok_makes_the_force_ready():
    result = _by_type(conditions([], _all_ok(), NOW))
    assert list(result) == ["TopicsReady", "KeyspaceReady", "ConsumersReady", "Ready"]
    ready = result["Ready"]
    assert (ready.status, ready.reason) == ("True", "Ready")
    assert ready.message == "topics, keyspace and consumers are ready"


def test_a_failed_step_keeps_the_force_not_ready():
    steps = [_ok(), _failed("KeyspaceReady", "CassandraUnavailable", retry=True), _ok()]
    ready = _by_type(conditions([], steps, NOW))["Ready"]
    assert ready.status == "False"
    assert ready.reason == "CassandraUnavailable"
    assert ready.message == "KeyspaceReady: KeyspaceReady broken"


def test_ready_gives_the_first_failures_reason_and_lists_every_failure():
    steps = [
        _failed("TopicsReady", "NotEnoughBrokers"),
        _ok("KeyspaceReady"),
        _failed("ConsumersReady", "Progressing"),
    ]
    ready = _by_type(conditions([], steps, NOW))["Ready"]
    assert ready.reason == "NotEnoughBrokers"
    assert ready.message == "TopicsReady: TopicsReady broken; ConsumersReady: ConsumersReady broken"


def test_each_condition_says_its_steps_status_reason_and_message():
    steps = [_ok("TopicsReady", "TopicsCreated"), _failed("ConsumersReady", "ApiError")]
    result = _by_type(conditions([], steps, NOW))
    assert result["TopicsReady"] == Condition(
        type="TopicsReady",
        status="True",
        reason="TopicsCreated",
        message="TopicsReady fine",
        last_transition_time=NOW_STAMP,
    )
    assert (result["ConsumersReady"].status, result["ConsumersReady"].reason) == (
        "False",
        "ApiError",
    )


def test_a_condition_keeps_its_transition_time_while_its_status_stays_the_same():
    before = conditions([], _all_ok(), EARLIER)
    after = _by_type(conditions(before, _all_ok(), NOW))
    assert {c.last_transition_time for c in after.values()} == {EARLIER_STAMP}


def test_a_condition_that_changes_status_takes_the_time_of_the_change():
    before = conditions([], _all_ok(), EARLIER)
    steps = [_ok("TopicsReady"), _failed("KeyspaceReady", "CassandraError"), _ok("ConsumersReady")]
    after = _by_type(conditions(before, steps, NOW))
    assert after["KeyspaceReady"].last_transition_time == NOW_STAMP
    assert after["Ready"].last_transition_time == NOW_STAMP
    assert after["TopicsReady"].last_transition_time == EARLIER_STAMP
    assert after["ConsumersReady"].last_transition_time == EARLIER_STAMP


def test_a_new_reason_with_the_same_status_is_no_transition():
    before = conditions([], [_failed("ConsumersReady", "Progressing")], EARLIER)
    after = _by_type(conditions(before, [_failed("ConsumersReady", "ApiError")], NOW))
    assert after["ConsumersReady"].reason == "ApiError"
    assert after["ConsumersReady"].last_transition_time == EARLIER_STAMP


def test_a_recorded_condition_without_a_time_is_given_the_current_one():
    before = [Condition(type="TopicsReady", status="True", reason="TopicsUpToDate")]
    [topics, _ready] = conditions(before, [_ok("TopicsReady")], NOW)
    assert topics.last_transition_time == NOW_STAMP


def test_a_message_longer_than_the_crd_allows_is_cut_to_its_bound():
    step = Step("TopicsReady", False, "KafkaError", "x" * 5000)
    [topics, ready] = conditions([], [step], NOW)
    assert topics.message == "x" * 4096
    assert len(ready.message) == 4096


# ------------------------------------------------------------------ merge_step


def test_a_fresh_step_takes_the_place_of_its_recorded_condition():
    recorded = conditions([], _all_ok(), EARLIER)
    fresh = _failed("ConsumersReady", "Progressing")
    steps = merge_step(recorded, fresh)
    assert [s.condition for s in steps] == ["TopicsReady", "KeyspaceReady", "ConsumersReady"]
    assert steps[2] == fresh


def test_a_condition_no_fresh_step_speaks_of_keeps_what_the_status_had():
    recorded = conditions(
        [], [_ok("TopicsReady", "TopicsCreated"), _failed("KeyspaceReady", "NotEnough")], EARLIER
    )
    steps = merge_step(recorded, _ok("ConsumersReady", "Available"))
    assert steps[0] == Step("TopicsReady", True, "TopicsCreated", "TopicsReady fine")
    assert steps[1] == Step("KeyspaceReady", False, "NotEnough", "KeyspaceReady broken")
    assert not steps[1].retry  # a recorded condition never asks for a retry by itself


def test_ready_is_never_taken_for_a_step():
    recorded = conditions([], [_failed("TopicsReady", "KafkaError")], EARLIER)
    steps = merge_step(recorded)
    assert [s.condition for s in steps] == ["TopicsReady"]


def test_a_fresh_step_the_status_has_no_condition_for_is_added_last():
    recorded = conditions([], _all_ok(), EARLIER)
    progressing = _ok("ConsumersProgressing", "Progressing")
    steps = merge_step(recorded, progressing)
    assert steps[-1] == progressing
    assert len(steps) == 4


def test_an_unknown_recorded_status_is_not_ok():
    recorded = [Condition(type="ConsumersReady", status="Unknown", reason="Starting")]
    [step] = merge_step(recorded)
    assert not step.ok


# ------------------------------------------------------------------ transitions


def test_the_first_stall_of_a_force_with_no_progress_condition_yet_posts_a_warning():
    [event] = transitions([], [_failed("ConsumersProgressing", "ArchiverStalled")])
    assert (event.type, event.reason, event.message) == (
        "Warning",
        "ArchiverStalled",
        "ConsumersProgressing broken",
    )


def test_a_first_progress_reading_that_is_fine_posts_nothing():
    assert transitions([], [_ok("ConsumersProgressing", "Progressing")]) == []


def test_only_progress_changes_post_events():
    recorded = conditions([], _all_ok(), EARLIER)
    steps = [_failed("TopicsReady", "KafkaUnavailable"), _failed("ConsumersReady", "ApiError")]
    assert transitions(recorded, steps) == []


# ------------------------------------------------------------------ phase


def test_a_force_is_provisioning_until_it_is_first_ready():
    assert phase(None, ready=False) == "Provisioning"
    assert phase("Pending", ready=False) == "Provisioning"
    assert phase("Provisioning", ready=False) == "Provisioning"


def test_a_ready_force_is_ready_whatever_came_before():
    for previous in (None, "Pending", "Provisioning", "Ready", "Degraded", "Failed"):
        assert phase(previous, ready=True) == "Ready"


def test_a_force_that_was_ready_and_is_no_longer_is_degraded_until_ready_again():
    assert phase("Ready", ready=False) == "Degraded"
    assert phase("Degraded", ready=False) == "Degraded"


def test_a_failed_force_whose_spec_was_fixed_provisions_again_rather_than_degrade():
    assert phase("Failed", ready=False) == "Provisioning"


# ------------------------------------------------------------------ the whole status


def test_the_status_names_the_forces_generation_topics_and_keyspace():
    status, events = status_after(PoliceForceStatus(), _force(7), Outcome(_all_ok()), NOW)
    assert (status.phase, status.observed_generation) == ("Ready", 7)
    assert (status.reports_topic, status.alerts_topic, status.dead_letter_topic) == (
        "peaceland.lyon-metropole.reports",
        "peaceland.lyon-metropole.alerts",
        "peaceland.lyon-metropole.dead-letter",
    )
    assert status.keyspace == "pf_lyon_metropole"
    assert events == []


def test_a_failed_step_after_ready_degrades_the_force():
    ready, _ = status_after(PoliceForceStatus(), _force(), Outcome(_all_ok()), EARLIER)
    failing = Outcome([_ok(), _failed("KeyspaceReady", "CassandraUnavailable", True), _ok()])
    status, _ = status_after(ready, _force(), failing, NOW)
    assert status.phase == "Degraded"
    assert {c.type: c.status for c in status.conditions}["Ready"] == "False"


def test_recording_the_same_outcome_again_changes_nothing():
    first, _ = status_after(PoliceForceStatus(), _force(), Outcome(_all_ok()), EARLIER)
    again, events = status_after(first, _force(), Outcome(_all_ok()), NOW)
    assert again == first  # so the handler patches nothing
    assert events == []


def test_a_reconcile_keeps_the_usage_the_usage_timer_measured():
    first, _ = status_after(PoliceForceStatus(), _force(), Outcome(_all_ok()), EARLIER)
    usage = ForceUsage(measured_at="2026-11-30T00:00:00Z", storage_bytes=1 << 20)
    measured = first.model_copy(update={"usage": usage})
    again, _ = status_after(measured, _force(), Outcome(_all_ok()), NOW)
    assert again.usage == usage
    assert again == measured  # a usage alone is nothing for a reconcile to write


def test_a_new_generation_is_a_change_to_record():
    first, _ = status_after(PoliceForceStatus(), _force(3), Outcome(_all_ok()), EARLIER)
    again, _ = status_after(first, _force(4), Outcome(_all_ok()), NOW)
    assert again != first
    assert again.observed_generation == 4


def test_a_progress_reading_missing_from_the_outcome_keeps_the_recorded_one():
    stalled = [*_all_ok(), _failed("ConsumersProgressing", "ArchiverStalled")]
    before, [warning] = status_after(PoliceForceStatus(), _force(), Outcome(stalled), EARLIER)
    assert warning.reason == "ArchiverStalled"
    after, events = status_after(before, _force(), Outcome(_all_ok()), NOW)
    progressing = {c.type: c for c in after.conditions}["ConsumersProgressing"]
    assert (progressing.status, progressing.reason) == ("False", "ArchiverStalled")
    assert after.phase == "Provisioning"  # never Ready yet
    assert {c.type: c.status for c in after.conditions}["Ready"] == "False"
    assert events == []  # still stalled: said once


def test_a_recovered_consumer_posts_one_normal_event():
    stalled = [*_all_ok(), _failed("ConsumersProgressing", "ArchiverStalled")]
    before, _ = status_after(PoliceForceStatus(), _force(), Outcome(stalled), EARLIER)
    recovered = Outcome([*_all_ok(), _ok("ConsumersProgressing", "Progressing")])
    after, [event] = status_after(before, _force(), recovered, NOW)
    assert (event.type, event.reason) == ("Normal", "ConsumersRecovered")
    assert after.phase == "Ready"


# ------------------------------------------------------------------ on the wire


def test_the_status_on_the_wire_has_the_crds_camel_case_fields():
    status, _ = status_after(
        PoliceForceStatus(), _force(2), Outcome([_ok("TopicsReady", "TopicsCreated")]), NOW
    )
    assert wire(status) == {
        "phase": "Ready",
        "observedGeneration": 2,
        "conditions": [
            {
                "type": "TopicsReady",
                "status": "True",
                "reason": "TopicsCreated",
                "message": "TopicsReady fine",
                "lastTransitionTime": NOW_STAMP,
            },
            {
                "type": "Ready",
                "status": "True",
                "reason": "Ready",
                "message": "topics, keyspace and consumers are ready",
                "lastTransitionTime": NOW_STAMP,
            },
        ],
        "reportsTopic": "peaceland.lyon-metropole.reports",
        "alertsTopic": "peaceland.lyon-metropole.alerts",
        "deadLetterTopic": "peaceland.lyon-metropole.dead-letter",
        "lifecycleTopic": "peaceland.lyon-metropole.lifecycle",
        "keyspace": "pf_lyon_metropole",
        "usage": None,  # never written by a reconcile: the usage timer's own field
    }


def test_a_status_written_reads_back_as_the_same_model():
    status, _ = status_after(PoliceForceStatus(), _force(), Outcome(_all_ok()), NOW)
    assert read_status(wire(status)) == status


def test_a_force_with_no_status_yet_reads_as_pending():
    status = read_status({})
    assert (status.phase, status.observed_generation, status.conditions) == ("Pending", None, [])


def test_a_status_the_model_cannot_read_reads_as_empty_so_it_is_written_anew():
    unreadable = {"phase": "Ready", "conditions": [{"type": "Ready", "status": "Maybe"}]}
    assert read_status(unreadable) == PoliceForceStatus()


# ------------------------------------------------------------------ the outcome


def test_an_outcome_is_ready_only_when_every_step_is_ok():
    assert Outcome(_all_ok()).ready
    assert not Outcome([*_all_ok(), _failed("ConsumersProgressing", "ArchiverStalled")]).ready


def test_an_outcome_retries_when_a_server_did_not_answer_and_not_for_a_spec_that_waits():
    assert Outcome([_failed("TopicsReady", "KafkaUnavailable", retry=True), _ok()]).retry
    assert not Outcome([_failed("TopicsReady", "NotEnoughBrokers"), _ok()]).retry
