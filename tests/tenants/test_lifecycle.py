"""An alert's lifecycle rules and the wire format of its transitions."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from peaceland.tenants.errors import InvalidRecordError
from peaceland.tenants.lifecycle import (
    IllegalTransitionError,
    Transition,
    decode_transition,
    encode_transition,
    next_state,
)

AT = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("state", "action", "after"),
    [
        ("open", "acknowledge", "acknowledged"),
        ("open", "resolve", "resolved"),
        ("acknowledged", "resolve", "resolved"),
        ("open", "assign", "open"),
        ("acknowledged", "assign", "acknowledged"),
        ("open", "note", "open"),
        ("resolved", "note", "resolved"),
    ],
)
def test_a_legal_transition_gives_the_next_state(state, action, after):
    assert next_state(state, action) == after


@pytest.mark.parametrize(
    ("state", "action", "reason"),
    [
        ("acknowledged", "acknowledge", "only an open one is acknowledged"),
        ("resolved", "acknowledge", "only an open one is acknowledged"),
        ("resolved", "resolve", "already resolved"),
        ("resolved", "assign", "can no longer be assigned"),
    ],
)
def test_an_illegal_transition_says_why(state, action, reason):
    with pytest.raises(IllegalTransitionError, match=reason):
        next_state(state, action)


def test_a_transition_goes_over_the_wire_and_back_with_its_id():
    transition = Transition(
        force_id="lyon",
        alert_id=uuid.uuid4(),
        seq=2,
        action="assign",
        state="acknowledged",
        actor="officer@lyon.fr",
        at=AT,
        raised_at=AT,
        assignee="other@lyon.fr",
    )
    assert decode_transition(encode_transition(transition)) == transition
    assert transition.event_id == f"{transition.alert_id}:2"


def test_a_transition_that_breaks_the_contract_names_the_field():
    with pytest.raises(InvalidRecordError, match="seq"):
        decode_transition(
            b'{"version": 1, "force_id": "lyon", "alert_id": "%s", "seq": 0, "action": "note",'
            b' "state": "open", "actor": "a@b.fr", "at": "2026-11-30T08:00:00Z"}'
            % str(uuid.uuid4()).encode()
        )
