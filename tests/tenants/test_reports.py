"""The drone report contract: what is accepted, what is refused, and why."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.reports import (
    MAX_CITIZENS,
    MAX_NAME_LENGTH,
    MAX_REPORT_BYTES,
    MAX_WORD_LENGTH,
    MAX_WORDS,
    Report,
    decode_drone_position,
    decode_report,
    encode_report,
    utc_now,
)
from tests.factories import make_report
from tests.strategies import largest_report

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def valid() -> dict[str, Any]:
    return {
        "version": 1,
        "report_id": "0b6f3e4c-7d0a-4c52-9a7e-1f2d3c4b5a69",
        "drone_id": "paris-07",
        "timestamp": "2026-11-29T11:59:00Z",
        "latitude": 48.8566,
        "longitude": 2.3522,
        "citizens": [{"name": "Alice Martin", "score": 12.5}, {"name": "Bruno Petit", "score": 80}],
        "words": ["foule", "police"],
    }


def decode(doc: dict[str, Any]) -> Report:
    return decode_report(json.dumps(doc), received_at=NOW)


def refusal(doc: dict[str, Any] | str | bytes) -> dict[str, str]:
    raw = doc if isinstance(doc, str | bytes) else json.dumps(doc)
    with pytest.raises(InvalidRecordError) as info:
        decode_report(raw, received_at=NOW)
    return {e.field: e.reason for e in info.value.errors}


def test_a_valid_report_decodes_with_every_field():
    report = decode(valid())
    assert report.drone_id == "paris-07"
    assert report.timestamp == datetime(2026, 11, 29, 11, 59, tzinfo=UTC)
    assert [(c.name, c.score) for c in report.citizens] == [
        ("Alice Martin", 12.5),
        ("Bruno Petit", 80.0),
    ]
    assert report.words == ["foule", "police"]
    assert report.lowest_score() == 12.5


def test_encoding_then_decoding_gives_the_same_report():
    rng = random.Random(7)
    for _ in range(200):
        report = make_report(rng, at=NOW)
        assert decode_report(encode_report(report), received_at=NOW) == report


def test_encoded_reports_carry_their_version():
    report = make_report(random.Random(1), at=NOW)
    assert json.loads(encode_report(report))["version"] == 1


def test_a_report_with_nobody_around_has_no_lowest_score():
    doc = valid() | {"citizens": []}
    assert decode(doc).lowest_score() is None


@pytest.mark.parametrize(
    ("change", "field", "reason_part"),
    [
        ({"latitude": 90.5}, "latitude", "less than or equal to 90"),
        ({"latitude": -91}, "latitude", "greater than or equal to -90"),
        ({"longitude": 180.01}, "longitude", "less than or equal to 180"),
        ({"longitude": "2.35"}, "longitude", "valid number"),
        ({"drone_id": ""}, "drone_id", "at least 1 character"),
        ({"drone_id": "x" * 65}, "drone_id", "at most 64 characters"),
        ({"drone_id": "drone 7"}, "drone_id", "letters, digits"),
        ({"report_id": "not-a-uuid"}, "report_id", "UUID"),
        ({"timestamp": "2026-11-29T11:59:00"}, "timestamp", "timezone"),
        ({"timestamp": 1764417540}, "timestamp", "datetime"),
        ({"version": 2}, "version", "unsupported version; this build reads version 1"),
        ({"words": ["ok", ""]}, "words.1", "at least 1 character"),
        ({"words": ["x" * (MAX_WORD_LENGTH + 1)]}, "words.0", f"at most {MAX_WORD_LENGTH}"),
        ({"words": [" padded"]}, "words.0", "white space"),
        ({"words": ["ok"] * (MAX_WORDS + 1)}, "words", f"at most {MAX_WORDS} items"),
    ],
)
def test_a_broken_field_is_named_with_its_reason(change, field, reason_part):
    reasons = refusal(valid() | change)
    assert field in reasons, reasons
    assert reason_part in reasons[field]


@pytest.mark.parametrize(
    ("citizen", "field", "reason_part"),
    [
        ({"name": "", "score": 10}, "citizens.0.name", "at least 1 character"),
        ({"name": "   ", "score": 10}, "citizens.0.name", "blank"),
        ({"name": "Eve\nMallory", "score": 10}, "citizens.0.name", "control characters"),
        ({"name": "x" * (MAX_NAME_LENGTH + 1), "score": 1}, "citizens.0.name", "at most 200"),
        ({"name": "Eve", "score": -0.1}, "citizens.0.score", "greater than or equal to 0"),
        ({"name": "Eve", "score": 100.5}, "citizens.0.score", "less than or equal to 100"),
        ({"name": "Eve", "score": True}, "citizens.0.score", "valid number"),
        ({"name": "Eve"}, "citizens.0.score", "Field required"),
        ({"name": "Eve", "score": 5, "age": 30}, "citizens.0.age", "unknown field"),
    ],
)
def test_a_broken_citizen_is_named_by_position(citizen, field, reason_part):
    reasons = refusal(valid() | {"citizens": [citizen]})
    assert field in reasons, reasons
    assert reason_part in reasons[field]


def test_non_finite_scores_are_refused():
    raw = json.dumps(valid()).replace("12.5", "NaN")
    assert "citizens.0.score" in refusal(raw)


def test_too_many_citizens_are_refused():
    crowd = [{"name": f"Citizen {i}", "score": 50} for i in range(MAX_CITIZENS + 1)]
    reasons = refusal(valid() | {"citizens": crowd})
    assert f"at most {MAX_CITIZENS} items" in reasons["citizens"]


def test_unknown_fields_are_refused_by_name():
    reasons = refusal(valid() | {"altitude": 120})
    assert reasons == {"altitude": "unknown field; version 1 reports take no other fields"}


def test_every_missing_field_is_named_at_once():
    reasons = refusal({"version": 1})
    assert set(reasons) == {
        "report_id",
        "drone_id",
        "timestamp",
        "latitude",
        "longitude",
        "citizens",
        "words",
    }


@pytest.mark.parametrize("raw", [b"", b"{", b"\xff\xfe", b"[1, 2]", b"null"])
def test_what_is_not_a_json_object_is_refused(raw):
    assert refusal(raw)


def test_a_report_older_than_a_week_is_refused():
    old = (NOW - timedelta(days=7, minutes=1)).isoformat()
    reasons = refusal(valid() | {"timestamp": old})
    assert "7 days older than its reception" in reasons["timestamp"]


def test_a_report_a_week_old_to_the_minute_is_accepted():
    assert decode(valid() | {"timestamp": (NOW - timedelta(days=7)).isoformat()})


def test_a_report_from_the_future_is_refused_beyond_clock_skew():
    ahead = (NOW + timedelta(minutes=6)).isoformat()
    reasons = refusal(valid() | {"timestamp": ahead})
    assert "6 minutes ahead of its reception" in reasons["timestamp"]
    assert decode(valid() | {"timestamp": (NOW + timedelta(minutes=4)).isoformat()})


def test_other_timezones_are_accepted_and_compared_in_utc():
    report = decode(valid() | {"timestamp": "2026-11-29T12:59:00+01:00"})
    assert report.timestamp == datetime(2026, 11, 29, 11, 59, tzinfo=UTC)


def test_the_error_message_lists_every_fault():
    with pytest.raises(InvalidRecordError) as info:
        decode(valid() | {"latitude": 100, "drone_id": ""})
    assert str(info.value).startswith("invalid report: ")
    assert "latitude:" in str(info.value)
    assert "drone_id:" in str(info.value)


def test_the_largest_valid_report_fits_the_contracts_size_bound():
    largest = largest_report(utc_now())
    # Every character four bytes long, names and words too (the distinct prefixes of
    # largest_report make the most sightings, not the most bytes).
    widest = largest.model_copy(
        update={
            "citizens": [
                c.model_copy(update={"name": "😀" * MAX_NAME_LENGTH}) for c in largest.citizens
            ],
            "words": ["😀" * MAX_WORD_LENGTH] * MAX_WORDS,
        }
    )
    decode_report(encode_report(widest), received_at=utc_now())  # valid
    assert 1_300_000 < len(encode_report(widest)) <= MAX_REPORT_BYTES


def test_a_drone_position_is_read_from_a_report_without_its_citizens_and_words():
    report = make_report(random.Random(3), citizens=4)
    position = decode_drone_position(encode_report(report))
    assert (position.drone_id, position.timestamp) == (report.drone_id, report.timestamp)
    assert (position.latitude, position.longitude) == (report.latitude, report.longitude)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"latitude": 91.0}, "latitude"),
        ({"drone_id": ""}, "drone_id"),
        ({"version": 2}, "version"),
    ],
)
def test_a_drone_position_out_of_the_contract_is_refused_by_name(change, field):
    value = json.loads(encode_report(make_report(random.Random(4))))
    with pytest.raises(InvalidRecordError) as refused:
        decode_drone_position(json.dumps(value | change))
    assert field in str(refused.value)


def test_a_record_that_is_no_report_is_refused_as_such():
    with pytest.raises(InvalidRecordError, match="report"):
        decode_drone_position(b"{not json")
