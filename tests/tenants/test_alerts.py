"""The alert contract and its deterministic ids."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from peaceland.tenants.alerts import Alert, alert_id_for, decode_alert, encode_alert
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
