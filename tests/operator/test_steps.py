"""What a step says when a server refuses it: the condition's reason, with no server."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import yaml
from cassandra import InvalidRequest, OperationTimedOut, Unauthorized
from cassandra.cluster import NoHostAvailable

from peaceland.operator.results import Force
from peaceland.operator.servers import Servers
from peaceland.operator.steps.keyspace import keyspace_step
from peaceland.tenants.policeforce import spec_from

ROOT = Path(__file__).resolve().parents[2]
BREST = yaml.safe_load((ROOT / "tenants/examples/brest.yaml").read_text())


@dataclass
class _Refusing:
    """A Cassandra session (and the servers holding it) that makes the keyspace, then
    refuses every other request (its tables)."""

    error: Exception
    cassandra_contact_points: str = "cassandra:9042"

    @property
    def settings(self) -> _Refusing:
        return self

    def cassandra(self) -> _Refusing:
        return self

    def execute(self, statement: str, *_args: Any, **_kwargs: Any) -> None:
        if not statement.startswith("CREATE KEYSPACE"):
            raise self.error


def _reason(error: Exception) -> str:
    force = Force("brest", "police", "uid", 1, spec_from(BREST["spec"]))
    step = keyspace_step(force, cast(Servers, _Refusing(error)), [])
    assert not step.ok
    assert step.retry
    return step.reason


@pytest.mark.parametrize(
    "error",
    [
        NoHostAvailable("no host", {}),
        OperationTimedOut("timed out"),
        InvalidRequest("Keyspace 'pf_brest' doesn't exist"),
    ],
)
def test_a_cassandra_that_does_not_answer_yet_is_unavailable(error: Exception):
    assert _reason(error) == "CassandraUnavailable"


@pytest.mark.parametrize(
    "error",
    [
        Unauthorized("User peaceland has no CREATE permission on <all keyspaces>"),
        InvalidRequest("Unknown property 'nonsense'"),
    ],
)
def test_a_cassandra_that_refuses_the_request_says_so_for_a_person_to_act(error: Exception):
    assert _reason(error) == "CassandraError"
