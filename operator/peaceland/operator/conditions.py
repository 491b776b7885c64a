"""A force's status from the steps' results: its conditions, its phase, and the Events its
changes deserve. Pure: no server, no clock but the one passed in."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from peaceland.operator.results import Event, Step, failures


def conditions(
    current: list[dict[str, Any]], steps: list[Step], now: datetime | None = None
) -> list[dict[str, Any]]:
    """The status conditions after ``steps``: the three steps' and ``Ready`` over them.

    A condition keeps its lastTransitionTime while its status stays the same."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_type = {c.get("type"): c for c in current}
    failing = [s for s in steps if not s.ok]
    ready = Step(
        "Ready",
        not failing,
        "Ready" if not failing else failing[0].reason,
        failures(failing) or "topics, keyspace and consumers are ready",
    )
    out = []
    for step in [*steps, ready]:
        status = "True" if step.ok else "False"
        previous = by_type.get(step.condition, {})
        since = previous.get("lastTransitionTime") if previous.get("status") == status else None
        out.append(
            {
                "type": step.condition,
                "status": status,
                "reason": step.reason,
                "message": step.message[:4096],
                "lastTransitionTime": since or stamp,
            }
        )
    return out


def merge_step(current: list[dict[str, Any]], *fresh: Step) -> list[Step]:
    """The steps recorded in ``current`` conditions, with each ``fresh`` step in place of its
    own (or added, when the status has no such condition yet)."""
    by_type = {step.condition: step for step in fresh}
    steps = []
    for condition in current:
        if condition.get("type") in (None, "Ready"):
            continue
        step = by_type.pop(condition["type"], None)
        steps.append(
            step
            or Step(
                condition["type"],
                condition.get("status") == "True",
                condition.get("reason", ""),
                condition.get("message", ""),
            )
        )
    return steps + list(by_type.values())


def transitions(current: list[dict[str, Any]], steps: list[Step]) -> list[Event]:
    """Events for a consumer that stalled or recovered since ``current`` conditions."""
    before = {c.get("type"): c.get("status") for c in current}
    events = []
    for step in steps:
        if step.condition != "ConsumersProgressing":
            continue
        was = before.get(step.condition)
        if not step.ok and was != "False":
            events.append(Event("Warning", step.reason, step.message))
        elif step.ok and was == "False":
            events.append(Event("Normal", "ConsumersRecovered", step.message))
    return events


def phase(previous: str | None, ready: bool) -> str:
    """Ready when ready; before the first Ready, Provisioning; after it, Degraded."""
    if ready:
        return "Ready"
    return "Degraded" if previous in ("Ready", "Degraded") else "Provisioning"
