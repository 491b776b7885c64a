"""Reconciling one police force: its topics, its keyspace and its consumers, then its status.

Plain, typed and idempotent: the kopf handlers call these and translate the outcome into
status, Events and kopf's retry errors. Each of the three steps runs even when another
fails, so the status says everything that is wrong at once, and a Kafka outage does not
stop the keyspace or the consumers from being made. Each step is a module of
``peaceland.operator.steps``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from peaceland.operator.kube import Workloads
from peaceland.operator.progress import Progress
from peaceland.operator.results import Cause, Event, Force, Outcome, Step, failures
from peaceland.operator.servers import Servers
from peaceland.operator.steps.claim import claim_step
from peaceland.operator.steps.consumers import consumers_step
from peaceland.operator.steps.keyspace import keyspace_step
from peaceland.operator.steps.progress import progress_step
from peaceland.operator.steps.topics import topics_step


def reconcile(
    force: Force, servers: Servers, workloads: Workloads, cause: Cause, progress: Progress
) -> Outcome:
    """Make the force's topics, keyspace and consumers match its spec; say how it went,
    and whether the consumers keep up.

    First the force's claim on its id: until it is held, nothing is touched, for another
    namespace's PoliceForce of the same name may own those topics and that keyspace.
    """
    refused = claim_step(force, servers, workloads)
    if refused is not None:
        return refused
    outcome = Outcome(steps=[])
    outcome.steps.append(topics_step(force, servers, outcome.events, cause))
    outcome.steps.append(keyspace_step(force, servers, outcome.events))
    outcome.steps.append(consumers_step(force, servers.settings, workloads, outcome.events, cause))
    step, outcome.verdicts = progress_step(force, servers, progress)
    if step is not None:
        outcome.steps.append(step)
    return outcome


# --------------------------------------------------------------------------- status


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
