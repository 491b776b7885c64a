"""An alert's latency broken into the stages of its way, from the moments each left."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from peaceland.loadgen.truth import GroundTruth
from peaceland.loadgen.verify import ALERT_STAGES, alert_stages
from tests.factories import make_alert

T0 = 1_764_567_000.0


def _alert(report_id: uuid.UUID, taken_up: float):
    alert = make_alert("f", "Ann", datetime.fromtimestamp(T0, UTC), report_id=report_id)
    return alert.model_copy(update={"raised_at": datetime.fromtimestamp(taken_up, UTC)})


def test_the_stages_are_a_chain_from_the_request_to_the_alert_on_screen() -> None:
    through, straight = uuid.uuid4(), uuid.uuid4()
    truth = GroundTruth(threshold=20)
    truth.posted_at[through] = T0
    truth.accepted_at[through] = T0 + 0.040
    truth.accepted_at[straight] = T0  # sent straight to Kafka: no request to time
    events = [(T0 + 0.100, _alert(through, T0 + 0.030)), (T0 + 1.0, _alert(straight, T0 + 0.5))]
    produced_at = [T0 + 0.070, T0 + 0.9]
    report_times = {through: T0 + 0.004, straight: T0 + 0.001}

    stages = alert_stages(events, produced_at, report_times, truth)

    assert list(stages) == list(ALERT_STAGES)
    p50 = {stage: figures["p50"] for stage, figures in stages.items()}
    assert p50 == {
        "request_to_gateway": 4.0,
        "gateway_to_answer": 36.0,
        "answer_to_alerter": -10.0,  # the alerter took it up before the answer reached the drone
        "alerter_to_alert_record": 40.0,
        "alert_record_to_visible": 30.0,
        "request_to_visible": 100.0,
    }
    assert all(figures["max"] == figures["p50"] for figures in stages.values())  # one event


def test_a_watcher_stopped_between_a_records_time_and_its_event_skews_nothing() -> None:
    report = uuid.uuid4()
    truth = GroundTruth(threshold=20)
    truth.posted_at[report] = T0
    truth.accepted_at[report] = T0 + 0.010
    events = [(T0 + 0.100, _alert(report, T0 + 0.030))]
    stages = alert_stages(events, [T0 + 0.070, T0 + 5.0], {report: T0 + 0.004}, truth)
    assert stages["alert_record_to_visible"]["max"] == 30.0
