"""What the gateway answers: the outcome of every report of a request."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class FieldProblem(BaseModel):
    field: str
    reason: str


class ReportOutcome(BaseModel):
    """What became of one report of the request, by its position in it."""

    index: int
    report_id: str | None = None
    status: Literal["accepted", "rejected", "failed"]
    reason: str | None = None
    errors: list[FieldProblem] = []


class IngestResponse(BaseModel):
    """``accepted`` reports are durable in Kafka; ``rejected`` ones break the data contract
    and must not be sent again as they are; ``failed`` ones may be sent again later."""

    accepted: int
    rejected: int
    failed: int
    results: list[ReportOutcome]
