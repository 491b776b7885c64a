"""Reading a request body as one report or a batch of them, each judged alone.

A batch is parsed and validated in one pass of pydantic-core (compiled): every item that is
a valid report comes out as a :class:`Report`, any other as the JSON value it is, and only
those are judged again one by one for their reasons. The parser refuses nesting deeper than
a report can have, so a hostile body meets a clear 400, not a recursion error; the body's
size is bounded before it is read (``max_body_bytes``), which bounds what parsing costs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any, Final, TypeAlias

from pydantic import Field, TypeAdapter, ValidationError

from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.reports import Report, check_report_time, decode_report

#: A batch item: a Report when it is one (tried first, in strict JSON mode), else the JSON
#: value as it is, to be judged alone for its reasons.
_Item: TypeAlias = Annotated[Report | Any, Field(union_mode="left_to_right")]


class BodyError(ValueError):
    """The body as a whole cannot be read as one report or a batch of them."""


@dataclass(frozen=True, slots=True)
class Parsed:
    """One report of the body, by its position: valid (``report``) or not (``error``)."""

    index: int
    report: Report | None
    error: InvalidRecordError | None


class BodyParser:
    """Parses bodies of at most ``max_batch`` reports."""

    def __init__(self, max_batch: int) -> None:
        self.max_batch = max_batch
        self._batch: TypeAdapter[list[_Item]] = TypeAdapter(
            Annotated[list[_Item], Field(min_length=1, max_length=max_batch)]
        )

    def parse(self, body: bytes, *, received_at: datetime) -> list[Parsed]:
        """One report (a JSON object) or a batch (a JSON array of them), each judged alone.

        A body that is not JSON at all is a 400, whether it looks like one report or a
        batch; a UTF-8 byte order mark before it is ignored (RFC 8259 lets a reader do so).
        """
        body = body.removeprefix(b"\xef\xbb\xbf")
        stripped = body.lstrip()
        if stripped.startswith(b"{"):
            return [_one(0, body, received_at)]
        if not stripped.startswith(b"["):
            raise BodyError("the body must be one report (a JSON object) or a JSON array of them")
        try:
            items = self._batch.validate_json(body)
        except ValidationError as exc:
            raise BodyError(self._why(exc)) from None
        return [
            _judged(i, item, received_at)
            if isinstance(item, Report)
            else _one(i, json.dumps(item), received_at)
            for i, item in enumerate(items)
        ]

    def _why(self, exc: ValidationError) -> str:
        error = exc.errors(include_url=False, include_input=False)[0]
        if error["type"] == "too_long":
            return f"a batch holds at most {self.max_batch} reports, this one more"
        if error["type"] == "too_short":
            return "the batch is empty"
        return f"the body is not valid JSON: {_json_reason(error['msg'])}"


def _one(index: int, raw: bytes | str, received_at: datetime) -> Parsed:
    try:
        report = decode_report(raw, received_at=received_at)
    except InvalidRecordError as exc:
        invalid = _invalid_json(exc)
        if invalid is not None:
            reason = _json_reason(invalid.removeprefix("not valid JSON: "))
            raise BodyError(f"the body is not valid JSON: {reason}") from None
        return Parsed(index, None, exc)
    return Parsed(index, report, None)


def _judged(index: int, report: Report, received_at: datetime) -> Parsed:
    try:
        check_report_time(report, received_at=received_at)
    except InvalidRecordError as exc:
        return Parsed(index, None, exc)
    return Parsed(index, report, None)


_NESTING: Final = "nested too deeply (a report holds at most three levels)"


def _json_reason(message: str) -> str:
    return _NESTING if "recursion limit" in message else message


def _invalid_json(exc: InvalidRecordError) -> str | None:
    """Why the record is not JSON at all, if that is what is wrong with it."""
    for error in exc.errors:
        if error.field == "(report)" and error.reason.startswith("not valid JSON"):
            return error.reason
    return None
