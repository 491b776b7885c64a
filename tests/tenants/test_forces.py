"""Naming a police force's resources."""

from __future__ import annotations

import pytest

from peaceland.tenants.errors import InvalidForceIdError
from peaceland.tenants.forces import resources_for


def test_every_resource_is_named_after_the_force():
    r = resources_for("lyon-metropole")
    assert r.reports_topic == "peaceland.lyon-metropole.reports"
    assert r.alerts_topic == "peaceland.lyon-metropole.alerts"
    assert r.dead_letter_topic == "peaceland.lyon-metropole.dead-letter"
    assert r.keyspace == "pf_lyon_metropole"


def test_two_forces_never_share_a_resource():
    a, b = resources_for("a-b"), resources_for("ab")
    assert not {*a.topics, a.keyspace} & {*b.topics, b.keyspace}


@pytest.mark.parametrize(
    "force_id", ["", "Lyon", "lyon_metropole", "-lyon", "lyon-", "a" * 41, "lyon.metropole", "é"]
)
def test_ids_that_cannot_name_resources_are_refused(force_id):
    with pytest.raises(InvalidForceIdError, match="invalid police force id"):
        resources_for(force_id)


def test_the_longest_id_still_makes_a_valid_keyspace_name():
    assert len(resources_for("a" * 40).keyspace) <= 48
