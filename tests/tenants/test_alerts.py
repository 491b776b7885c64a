"""The alert contract and its deterministic ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from peaceland.tenants.alerts import (
    Alert,
    AlertView,
    alert_id_for,
    decode_alert,
    encode_alert,
    fold,
)
from peaceland.tenants.errors import InvalidRecordError

REPORT = uuid.UUID("0b6f3e4c-7d0a-4c52-9a7e-1f2d3c4b5a69")


def test_the_same_sighting_always_gets_the_same_alert_id():
    assert alert_id_for("paris", "Alice Martin", REPORT) == alert_id_for(
        "paris", "Alice Martin", REPORT
    )


@pytest.mark.parametrize(
    ("force", "citizen", "report"),
    [
        ("lyon", "Alice Martin", REPORT),
        ("paris", "Bruno Petit", REPORT),
        ("paris", "Alice Martin", uuid.UUID(int=1)),
    ],
)
def test_a_different_force_citizen_or_report_gets_another_alert_id(force, citizen, report):
    assert alert_id_for(force, citizen, report) != alert_id_for("paris", "Alice Martin", REPORT)


def test_an_alert_survives_its_wire_format():
    at = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
    alert = Alert(
        event="raised",
        alert_id=alert_id_for("paris", "Alice Martin", REPORT),
        force_id="paris",
        drone_id="paris-07",
        report_id=REPORT,
        citizen="Alice Martin",
        score=3.5,
        latitude=48.85,
        longitude=2.35,
        reported_at=at,
        opened_at=at,
        raised_at=at,
    )
    assert decode_alert(encode_alert(alert)) == alert


def test_a_broken_alert_names_its_fields():
    with pytest.raises(InvalidRecordError) as info:
        decode_alert(b'{"version": 1, "score": 500}')
    fields = {e.field for e in info.value.errors}
    assert {"score", "alert_id", "citizen"} <= fields


def _event(kind: str, report: int, minute: int) -> Alert:
    at = datetime(2026, 11, 29, 12, minute, tzinfo=UTC)
    return Alert(
        event=kind,  # type: ignore[arg-type]
        alert_id=alert_id_for("paris", "Eve", REPORT),
        force_id="paris",
        citizen="Eve",
        score=3.0,
        drone_id=f"d-{report}",
        report_id=uuid.UUID(int=report),
        latitude=48.0 + minute / 100,
        longitude=2.0,
        reported_at=at,
        opened_at=datetime(2026, 11, 29, 12, 1, tzinfo=UTC),
        raised_at=datetime(2026, 11, 29, 12, 30, tzinfo=UTC),
    )


EVENTS = [_event("raised", 1, 1), _event("updated", 2, 5), _event("updated", 3, 3)]


@given(st.permutations(EVENTS))
def test_an_alert_view_is_the_same_whatever_the_order_of_its_events(events):
    views: dict[uuid.UUID, AlertView] = {}
    for event in events:
        view = fold(views, event)
    assert view.raised == EVENTS[0]
    assert view.latest == EVENTS[1]  # taken last (minute 5), whatever arrived last
    assert view.sightings == 3
    assert view.opened_at == EVENTS[0].opened_at


def test_an_update_before_its_raise_opens_the_view_without_a_raise():
    views: dict[uuid.UUID, AlertView] = {}
    view = fold(views, EVENTS[1])
    assert view.raised is None
    assert view.citizen == "Eve"
    assert fold(views, EVENTS[0]).raised == EVENTS[0]


def test_a_resent_report_gives_the_same_view_whatever_order_its_two_events_come_in():
    raised = _event("raised", 1, 1)
    resent = raised.model_copy(update={"event": "updated"})
    one: dict[uuid.UUID, AlertView] = {}
    other: dict[uuid.UUID, AlertView] = {}
    for event in (raised, resent):
        fold(one, event)
    for event in (resent, raised):
        fold(other, event)
    assert one == other
