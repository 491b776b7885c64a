"""What the reconcile steps return and the handlers act on: a force as the API server holds
it, each step's typed result (the condition it sets), the Events to post, and the outcome of
a whole reconcile. Plain data: no server is touched here."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Literal

from peaceland.operator.progress import Verdict
from peaceland.tenants.policeforce import ConditionType, PoliceForceSpec

Cause = Literal["create", "update", "resume", "drift"]
EventType = Literal["Normal", "Warning"]


@dataclass(frozen=True, slots=True)
class Force:
    """One PoliceForce as the API server holds it."""

    name: str
    namespace: str
    uid: str
    generation: int
    spec: PoliceForceSpec

    @property
    def owner(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True, slots=True)
class Step:
    """The result of one step: the condition it sets and whether to try again soon."""

    condition: ConditionType
    ok: bool
    reason: str
    message: str
    #: A server did not answer: retry with backoff. False and not ok: wait for a change
    #: (of the spec, of the cluster) or, for consumers, for their pods.
    retry: bool = False

    def as_condition(self, condition: ConditionType) -> Step:
        """The same result, for another condition."""
        return Step(condition, self.ok, self.reason, self.message, self.retry)


@dataclass(frozen=True, slots=True)
class Event:
    type: EventType
    reason: str
    message: str


@dataclass(slots=True)
class Outcome:
    steps: list[Step]
    events: list[Event] = field(default_factory=list)
    #: Why the spec can never work as it stands (then nothing was touched).
    permanent: str | None = None
    #: How each consumer group kept up, when the progress step ran.
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def ready(self) -> bool:
        return all(s.ok for s in self.steps)

    @property
    def retry(self) -> bool:
        return any(s.retry for s in self.steps)

    def failures(self) -> str:
        return failures(self.steps)


def failures(steps: Iterable[Step]) -> str:
    """Every failing step, as one line: ``TopicsReady: …; ConsumersReady: …``."""
    return "; ".join(f"{s.condition}: {s.message}" for s in steps if not s.ok)
