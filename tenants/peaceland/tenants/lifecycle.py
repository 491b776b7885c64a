"""An alert's lifecycle: open → acknowledged → resolved, with assignments and notes, and the
versioned JSON wire format of each transition on the force's lifecycle topic.

An alert is open from the moment it is raised. An officer acknowledges it (the reaction
time is ``acknowledged_at - raised_at``), may assign it to someone and add notes, and
resolves it (``resolved_at - raised_at``). Each transition is numbered within its alert
(``seq``, from 1): readers of the topic keep one copy of each ``(alert_id, seq)``, since a
transition may be published twice (a crash between its commit and its acknowledgement).

The rules are a pure function of the current state (:func:`next_state`); an illegal
transition says why, naming the state and who put it there.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Final, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from peaceland.tenants.errors import InvalidRecordError

LIFECYCLE_VERSION: Final = 1

AlertState = Literal["open", "acknowledged", "resolved"]
Action = Literal["acknowledge", "assign", "resolve", "note"]
ACTIONS: Final[tuple[Action, ...]] = ("acknowledge", "assign", "resolve", "note")

#: Longest note, in characters.
MAX_NOTE: Final = 2_000
#: Longest name of a person (an e-mail address, as the control plane knows people).
MAX_PERSON: Final = 320

Person = Annotated[str, Field(min_length=1, max_length=MAX_PERSON)]
Note = Annotated[str, Field(min_length=1, max_length=MAX_NOTE)]


class IllegalTransitionError(ValueError):
    """A transition the alert's state does not allow; the message says why."""


def next_state(state: AlertState, action: Action) -> AlertState:
    """The state after ``action``, or IllegalTransitionError.

    - acknowledge: an open alert only;
    - resolve: an open or acknowledged one;
    - assign: any alert not resolved (the state stays);
    - note: any alert (the state stays).
    """
    if action == "acknowledge":
        if state != "open":
            raise IllegalTransitionError(f"the alert is {state}: only an open one is acknowledged")
        return "acknowledged"
    if action == "resolve":
        if state == "resolved":
            raise IllegalTransitionError("the alert is already resolved")
        return "resolved"
    if action == "assign" and state == "resolved":
        raise IllegalTransitionError("the alert is resolved: it can no longer be assigned")
    return state


class Transition(BaseModel):
    """One transition of one alert, as the lifecycle topic carries it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    version: Literal[1] = LIFECYCLE_VERSION
    force_id: Annotated[str, Field(min_length=1, max_length=63)]
    alert_id: uuid.UUID
    #: The transition's number within its alert, from 1: ``(alert_id, seq)`` is its id.
    seq: Annotated[int, Field(ge=1)]
    action: Action
    #: The state the transition left the alert in.
    state: AlertState
    #: Who made it (the person's e-mail address).
    actor: Person
    at: AwareDatetime
    #: When the alert was raised: reaction times are ``at - raised_at``.
    raised_at: AwareDatetime | None = None
    assignee: Person | None = None
    note: Note | None = None

    @property
    def event_id(self) -> str:
        return f"{self.alert_id}:{self.seq}"


def encode_transition(transition: Transition) -> bytes:
    return transition.model_dump_json().encode()


def decode_transition(data: bytes | str) -> Transition:
    """Decode and validate one transition from its JSON wire format."""
    try:
        return Transition.model_validate_json(data)
    except ValidationError as exc:
        raise InvalidRecordError.from_validation("transition", exc) from None
