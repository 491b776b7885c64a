"""A force's status from the steps' results: its conditions, its phase, and the Events its
changes deserve. Pure: no server, no clock but the one passed in.

The status is the typed :class:`~peaceland.tenants.policeforce.PoliceForceStatus`, the
model the CRD's status schema is generated from: what is written is what the API server
validates, and what is read back is typed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final, Literal

from pydantic import ValidationError

from peaceland.operator.results import Event, Force, Outcome, Step, failures
from peaceland.tenants.forces import resources_for
from peaceland.tenants.policeforce import Condition, ForceUsage, PoliceForceStatus

log = logging.getLogger(__name__)

#: What ``phase`` decides; ``Failed`` and ``Deleting`` are set by the handlers themselves.
Phase = Literal["Provisioning", "Ready", "Degraded"]

#: The longest message a condition holds (the CRD's bound).
_MESSAGE_MAX: Final = 4096


def timestamp(now: datetime | None = None) -> str:
    """A condition's lastTransitionTime: UTC, to the second, as Kubernetes writes it."""
    return (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")


def read_status(raw: Mapping[str, Any]) -> PoliceForceStatus:
    """The status as the API server holds it. The CRD's schema is the model's, so nothing
    else can be there; were it unreadable all the same (a CRD older than the operator), it
    reads as empty and is written anew."""
    try:
        return PoliceForceStatus.model_validate(dict(raw))
    except ValidationError as exc:
        log.warning("a status the model cannot read is written anew: %s", exc)
        return PoliceForceStatus()


def conditions(
    current: Sequence[Condition], steps: Sequence[Step], now: datetime | None = None
) -> list[Condition]:
    """The status conditions after ``steps``: the three steps' and ``Ready`` over them.

    A condition keeps its lastTransitionTime while its status stays the same."""
    stamp = timestamp(now)
    by_type = {c.type: c for c in current}
    failing = [s for s in steps if not s.ok]
    ready = Step(
        "Ready",
        not failing,
        "Ready" if not failing else failing[0].reason,
        failures(failing) or "topics, keyspace and consumers are ready",
    )
    out = []
    for step in [*steps, ready]:
        status: Literal["True", "False"] = "True" if step.ok else "False"
        previous = by_type.get(step.condition)
        since = (
            previous.last_transition_time
            if previous is not None and previous.status == status
            else None
        )
        out.append(
            Condition(
                type=step.condition,
                status=status,
                reason=step.reason,
                message=step.message[:_MESSAGE_MAX],
                last_transition_time=since or stamp,
            )
        )
    return out


def merge_step(current: Sequence[Condition], *fresh: Step) -> list[Step]:
    """The steps recorded in ``current`` conditions, with each ``fresh`` step in place of its
    own (or added, when the status has no such condition yet)."""
    by_type = {step.condition: step for step in fresh}
    steps = []
    for recorded in current:
        if recorded.type == "Ready":
            continue
        step = by_type.pop(recorded.type, None)
        steps.append(
            step
            or Step(recorded.type, recorded.status == "True", recorded.reason, recorded.message)
        )
    return steps + list(by_type.values())


def transitions(current: Sequence[Condition], steps: Sequence[Step]) -> list[Event]:
    """Events for a consumer that stalled or recovered since ``current`` conditions."""
    before = {c.type: c.status for c in current}
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


def phase(previous: str | None, ready: bool) -> Phase:
    """Ready when ready; before the first Ready, Provisioning; after it, Degraded."""
    if ready:
        return "Ready"
    return "Degraded" if previous in ("Ready", "Degraded") else "Provisioning"


def status_after(
    current: PoliceForceStatus, force: Force, outcome: Outcome, now: datetime | None = None
) -> tuple[PoliceForceStatus, list[Event]]:
    """The force's status once ``outcome`` is recorded, and the Events of its transitions.

    A condition the outcome says nothing of (progress, when Kafka could not be read) keeps
    what the status had."""
    steps = merge_step(current.conditions, *outcome.steps)
    resources = resources_for(force.name)
    status = PoliceForceStatus(
        phase=phase(current.phase, all(s.ok for s in steps)),
        observed_generation=force.generation,
        conditions=conditions(current.conditions, steps, now),
        reports_topic=resources.reports_topic,
        alerts_topic=resources.alerts_topic,
        dead_letter_topic=resources.dead_letter_topic,
        lifecycle_topic=resources.lifecycle_topic,
        keyspace=resources.keyspace,
        usage=current.usage,  # the usage timer's to write, never a reconcile's
    )
    return status, transitions(current.conditions, steps)


def wire(status: PoliceForceStatus | Condition | ForceUsage) -> dict[str, Any]:
    """A status, or one condition, as the API server takes it (camelCase)."""
    return status.model_dump(mode="json", by_alias=True)
