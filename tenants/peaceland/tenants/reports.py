"""The drone report: what a drone sends once a minute, and its versioned JSON wire format.

A report says which drone, where it was, when, which citizens face recognition saw around
it (each with a score) and which words it heard. Every bound below is part of the contract
(docs/data-contract.md explains each one); a report that breaks one is refused with an
:class:`~peaceland.tenants.errors.InvalidRecordError` naming the field and the reason.

Decoding runs on every report that enters the platform, so every per-field rule is a
pydantic constraint checked in pydantic-core (compiled), and only the time-window check,
which needs the moment the report was received, runs in Python afterwards.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from peaceland.tenants.errors import FieldError, InvalidRecordError

#: The wire format version this build writes and reads. A new, incompatible format gets a
#: new number; readers refuse numbers they do not know instead of guessing.
REPORT_VERSION: Final = 1

#: Scores run from 0 (the lowest, most worrying) to 100. A force alerts below its threshold.
SCORE_MIN: Final = 0.0
SCORE_MAX: Final = 100.0

MAX_CITIZENS: Final = 1_000
MAX_WORDS: Final = 2_000
MAX_NAME_LENGTH: Final = 200
MAX_WORD_LENGTH: Final = 64
MAX_DRONE_ID_LENGTH: Final = 64

#: The most bytes a valid report takes in its canonical encoding (``encode_report``): every
#: list full, every text at its longest, every character four bytes of UTF-8 is 1.33 MB.
#: Kafka topics and producers are sized from it; a test keeps it true.
MAX_REPORT_BYTES: Final = 1_400_000

#: How old a report may be when it is received: drones buffer reports while out of radio
#: range and send them late, but a week-old report is a broken clock, not a late drone.
MAX_REPORT_AGE: Final = timedelta(days=7)
#: How far ahead of the receiver's clock a report may be: drone clocks drift a little.
MAX_CLOCK_SKEW: Final = timedelta(minutes=5)

# A name or a word: no control characters, no leading or trailing blank.
_TEXT_PATTERN: Final = r"^[^\s\x00-\x1f\x7f](?:[^\x00-\x1f\x7f]*[^\s\x00-\x1f\x7f])?$"

DroneId = Annotated[
    str,
    StringConstraints(
        min_length=1,
        max_length=MAX_DRONE_ID_LENGTH,
        pattern=r"^[A-Za-z0-9][A-Za-z0-9._:-]*$",
    ),
]
CitizenName = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_NAME_LENGTH, pattern=_TEXT_PATTERN)
]
Word = Annotated[
    str, StringConstraints(min_length=1, max_length=MAX_WORD_LENGTH, pattern=_TEXT_PATTERN)
]
Score = Annotated[float, Field(ge=SCORE_MIN, le=SCORE_MAX, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=-90.0, le=90.0, allow_inf_nan=False)]
Longitude = Annotated[float, Field(ge=-180.0, le=180.0, allow_inf_nan=False)]

_STRICT = ConfigDict(extra="forbid", frozen=True, strict=True)


class Citizen(BaseModel):
    """A citizen recognised around a drone, with the score face recognition gave."""

    model_config = _STRICT

    name: CitizenName
    score: Score


class Report(BaseModel):
    """One report of one drone. ``report_id`` is chosen by the drone and makes resends safe."""

    model_config = _STRICT

    version: Literal[1] = REPORT_VERSION
    report_id: uuid.UUID
    drone_id: DroneId
    timestamp: AwareDatetime
    latitude: Latitude
    longitude: Longitude
    citizens: Annotated[list[Citizen], Field(max_length=MAX_CITIZENS)]
    words: Annotated[list[Word], Field(max_length=MAX_WORDS)]

    def lowest_score(self) -> float | None:
        """The lowest score in the report, or None when nobody was recognised."""
        return min((c.score for c in self.citizens), default=None)

    def sightings(self) -> list[Citizen]:
        """Each citizen of the report once, with their lowest score, in order of first
        appearance: face recognition may name one person twice in a frame, and that is one
        sighting, judged by its most worrying score."""
        lowest: dict[str, Citizen] = {}
        for citizen in self.citizens:
            seen = lowest.get(citizen.name)
            if seen is None or citizen.score < seen.score:
                lowest[citizen.name] = citizen
        return list(lowest.values())


def decode_report(data: bytes | str, *, received_at: datetime) -> Report:
    """Decode and validate one report from its JSON wire format.

    ``received_at`` is when the platform received the report: the gateway passes its clock,
    a consumer passes the Kafka record's timestamp, so that replaying a topic a month later
    judges each report exactly as it was judged the first time.

    Raises InvalidRecordError naming every field at fault.
    """
    try:
        report = Report.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidRecordError("report", _field_errors(exc)) from None
    check_report_time(report, received_at=received_at)
    return report


def check_report_time(report: Report, *, received_at: datetime) -> None:
    """Refuse a report timestamped absurdly far before or after its reception."""
    age = received_at - report.timestamp
    if age > MAX_REPORT_AGE:
        reason = (
            f"{_human(age)} older than its reception at {received_at.isoformat()}; "
            f"reports older than {_human(MAX_REPORT_AGE)} are refused"
        )
    elif -age > MAX_CLOCK_SKEW:
        reason = (
            f"{_human(-age)} ahead of its reception at {received_at.isoformat()}; "
            f"drone clocks may run at most {_human(MAX_CLOCK_SKEW)} ahead"
        )
    else:
        return
    raise InvalidRecordError("report", [FieldError("timestamp", reason)])


class DronePosition(BaseModel):
    """Where a drone was when it reported: what a map of the fleet needs of a report,
    read without the cost of its citizens and words (extra fields are skipped)."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)

    version: Literal[1]
    drone_id: DroneId
    timestamp: AwareDatetime
    latitude: Latitude
    longitude: Longitude


def decode_drone_position(data: bytes | str) -> DronePosition:
    """The drone, time and position of one report in its JSON wire format."""
    try:
        return DronePosition.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidRecordError.from_validation("report", exc) from None


def encode_report(report: Report) -> bytes:
    """The JSON wire format of a report (UTF-8, compact, timestamps in ISO 8601)."""
    return report.model_dump_json().encode()


def utc_now() -> datetime:
    """The current time, timezone-aware in UTC: the only clock the contract accepts."""
    return datetime.now(UTC)


def _human(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    for unit, size in (("day", 86_400), ("hour", 3_600), ("minute", 60)):
        if seconds >= size:
            count = seconds // size
            return f"{count} {unit}{'s' if count > 1 else ''}"
    return f"{seconds} seconds"


def _field_errors(exc: ValidationError) -> list[FieldError]:
    return [_field_error(err) for err in exc.errors(include_url=False, include_input=False)]


def _field_error(err: Any) -> FieldError:
    loc = ".".join(str(part) for part in err["loc"]) or "(report)"
    kind = err["type"]
    if kind == "literal_error" and loc == "version":
        return FieldError(loc, f"unsupported version; this build reads version {REPORT_VERSION}")
    if kind == "extra_forbidden":
        return FieldError(loc, "unknown field; version 1 reports take no other fields")
    if kind == "json_invalid":
        return FieldError("(report)", f"not valid JSON: {err['msg']}")
    if kind == "string_pattern_mismatch":
        return FieldError(loc, _PATTERN_REASONS.get(loc.split(".")[0], err["msg"]))
    return FieldError(loc, err["msg"])


_PATTERN_REASONS: Final = {
    "drone_id": "must start with a letter or digit and hold only letters, digits and . _ : -",
    "citizens": "must not be blank, start or end with white space, or hold control characters",
    "words": "must not be blank, start or end with white space, or hold control characters",
}
