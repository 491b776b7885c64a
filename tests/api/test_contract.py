"""Contract tests: every route of the control plane against its own OpenAPI document.

schemathesis generates requests from the document the application serves (mostly valid
ones, some invalid), sends them to the real application of the ``api`` fixture (its own
PostgreSQL database and Kubernetes namespace) and checks every answer: never a 5xx; a
status code, content type, headers and body the document declares for the route; every
error an RFC 9457 problem, ``application/problem+json``, shaped as the document's
``ProblemBody``.

One test per group of routes (their OpenAPI tag); inside it, one hypothesis run per
operation, every example run even after a failure, each distinct failure reported once
with a curl command that reproduces it. The ``api`` fixture is function-scoped, so
``@given`` wraps a function inside the test, never the test itself. The document is read
through the fixture's client and requests go in-process through schemathesis' ASGI client,
never entered: the application's lifespan stays the one the fixture's TestClient runs
(``schemathesis.openapi.from_asgi`` or an entered client would start a second one, which
outlives the test).

Generated requests are sent as a platform admin (the gateways' routes with the gateways'
token), and path parameters name resources made beforehand most of the time, so that most
requests reach the handlers instead of stopping at 401 or 404. A run is reproducible
(``derandomize``) and writes no hypothesis database.
"""

from __future__ import annotations

import base64
import json
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import jsonschema_rs
import pytest
import schemathesis
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.python.asgi import ASGIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.api.conftest import ADMIN_EMAIL, Api, provision, raise_alert, unprovision
from tests.operator.kube_helpers import Kubectl

PROBLEM = "application/problem+json"
#: The route groups, by OpenAPI tag: each is one test.
GROUPS = (
    "sign in",
    "plans",
    "police forces",
    "drones and keys",
    "people",
    "audit",
    "usage",
    "gateways",
    "alerts",
    "analytics",
)
#: Routes no request of this test can end: the live feed streams until the page leaves
#: (tests/api/test_feed.py holds it to its contract).
STREAMS = {("GET", "/v1/forces/{force_id}/alerts/feed")}
#: Examples per operation (valid and invalid requests together).
EXAMPLES = 25
#: Fewer for the creates that leave a PoliceForce behind (each costs the teardown time).
EXAMPLES_FOR = {("POST", "/v1/forces"): 10}
_ORDER = {"GET": 0, "POST": 1, "PATCH": 2, "PUT": 2, "DELETE": 3}


def problem_details(
    ctx: Any, response: schemathesis.Response, case: schemathesis.Case[Any]
) -> None:
    """Every error is ``application/problem+json`` and a ``ProblemBody`` of its status.

    The document gives errors' ``application/problem+json`` no schema (only their
    ``application/json`` has one), so response_schema_conformance checks nothing of an
    error's body: this check holds it to ``ProblemBody``."""
    if response.status_code < 400:
        return
    content_type = (response.headers.get("content-type") or [""])[0]
    assert content_type.split(";")[0].strip() == PROBLEM, (
        f"{response.status_code} answered as {content_type!r}, not {PROBLEM}"
    )
    document = case.operation.schema.raw_schema
    validator = jsonschema_rs.validator_for(
        {"$ref": "#/components/schemas/ProblemBody", "components": document["components"]}
    )
    body = json.loads(response.content)
    errors = [str(e) for e in validator.iter_errors(body)]
    assert not errors, f"not a ProblemBody: {errors}"
    assert body["status"] == response.status_code, "the body's status is not the answer's"


#: positive_data_acceptance is left out: requests valid by the document are refused, rightly,
#: by what it cannot say (made-up ids: 404; a stale ETag: 412; a plan's bounds or
#: min_retention_days above max_retention_days: 422).
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
    problem_details,
]


#: No security parameters generated: every request is sent with the caller's token, so an
#: "invalid" case that dropped it would be made valid again and its success misreported.
#: No undeclared parameters: the routes ignore unknown query parameters and headers, as HTTP
#: servers do and OpenAPI allows, so "accepted an unknown parameter" is not a defect here.
#: Reports keep every value (passwords, keys, tokens are this test's own, in a database
#: dropped after it): a failure's curl command must reproduce it.
CONFIG = schemathesis.Config.from_dict(
    {
        "generation": {"with-security-parameters": False, "allow-extra-parameters": False},
        "output": {"sanitization": {"enabled": False}},
    }
)


def _cursor(key: list[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key).encode()).decode().rstrip("=")


_JSON_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=12),
)
#: A list's ``cursor``: random text rarely decodes, so most of them are well-formed cursors
#: holding whatever JSON (one key, as the lists' own cursors; or another count of them).
CURSORS = st.one_of(
    st.text(max_size=30),
    st.builds(lambda key: [key], _JSON_SCALARS).map(_cursor),
    st.lists(_JSON_SCALARS, max_size=3).map(_cursor),
)


@dataclass
class World:
    """The application under test, what exists in it, and who speaks to it."""

    api: Api
    client: ASGIClient
    plan_id: str
    spare_plan_id: str
    force_id: str
    victim_force_id: str
    drone_id: str
    victim_drone_id: str
    key_id: str
    victim_user_id: int
    person: dict[str, str]
    person_password: list[str] = field(default_factory=list)
    alert_id: str | None = None
    #: An officer of the force: alerts are the force's people's alone.
    officer: dict[str, str] = field(default_factory=dict)

    def known(self, method: str, path: str) -> dict[str, Any]:
        """Path parameters naming resources that exist (destructive routes get their own)."""
        deleting = method == "DELETE"
        values: dict[str, Any] = {
            "plan_id": self.spare_plan_id
            if deleting and path.endswith("{plan_id}")
            else self.plan_id,
            "force_id": self.victim_force_id
            if deleting and path.endswith("/forces/{force_id}")
            else self.force_id,
            "drone_id": self.victim_drone_id
            if deleting and path.endswith("/drones/{drone_id}")
            else self.drone_id,
            "key_id": self.key_id,
            "user_id": self.victim_user_id,
            "alert_id": self.alert_id,
            "name": "coverage",
        }
        return {name: value for name, value in values.items() if f"{{{name}}}" in path}

    def etag(self, path: str) -> str:
        answer = self.api.client.get(path, headers=self.api.admin)
        return answer.headers.get("etag", '"none"')

    def prepare(self, case: schemathesis.Case[Any], data: st.DataObject) -> dict[str, str]:
        """Steer a valid case towards the handler (an invalid one is sent as drawn, so that
        it stays invalid); the headers to send it with."""
        key = (case.method.upper(), case.path)
        valid = case.meta is not None and case.meta.generation.mode.is_positive
        body = case.body if isinstance(case.body, dict) and valid else None
        if (
            valid
            and case.query
            and isinstance(case.query.get("cursor"), str)
            and data.draw(st.booleans(), label="a crafted cursor")
        ):
            case.query["cursor"] = data.draw(CURSORS, label="cursor")
        if (
            valid
            and case.method.upper() == "PATCH"
            and data.draw(st.booleans(), label="fresh If-Match")
        ):
            case.headers["If-Match"] = self.etag(case.formatted_path)
        if (
            key == ("POST", "/v1/forces")
            and body is not None
            and data.draw(st.booleans(), label="on an existing plan")
        ):
            body["plan_id"] = self.plan_id
        if (
            key == ("POST", "/v1/forces/{force_id}/alerts/{alert_id}/transitions")
            and body is not None
            and body.get("action") == "assign"
            and data.draw(st.booleans(), label="an officer of the force")
        ):
            body["assignee"] = "victim@force.test"
        if key == ("POST", "/v1/auth/token"):
            if valid and data.draw(st.booleans(), label="right credentials"):
                case.body = {"email": ADMIN_EMAIL, "password": self.api.admin_password}
            return {}
        if key == ("POST", "/v1/auth/logout"):
            return self.api.login(ADMIN_EMAIL, self.api.admin_password)
        if key == ("POST", "/v1/me/password"):
            if body is not None and data.draw(st.booleans(), label="right password"):
                body["current_password"] = self.person_password[-1]
            return self.person
        if (
            key == ("POST", "/v1/forces/{force_id}/sql")
            and body is not None
            and data.draw(st.booleans(), label="a query of its tables")
        ):
            body["query"] = "SELECT count(*) AS n FROM reports"
            body["timeout_seconds"] = 30.0
        return self._caller(case)

    def _caller(self, case: schemathesis.Case[Any]) -> dict[str, str]:
        """Who asks: whoever each route is for."""
        if case.path.startswith("/v1/internal/"):
            return self.api.gateway
        if case.path == "/v1/forces/{force_id}/sql":
            return self.person  # an analyst of the force
        if case.path.startswith(
            (
                "/v1/forces/{force_id}/alerts",
                "/v1/forces/{force_id}/positions",
                "/v1/forces/{force_id}/statistics",
            )
        ):
            return self.officer
        return self.api.admin

    def after(self, case: schemathesis.Case[Any], status: int) -> None:
        if (case.method.upper(), case.path) == ("POST", "/v1/me/password") and status == 204:
            assert isinstance(case.body, dict)
            self.person_password.append(str(case.body["new_password"]))


def _created(answer: Any, status: int = 201) -> dict[str, Any]:
    assert answer.status_code == status, answer.text
    return dict(answer.json())


def _world(api: Api) -> World:
    """A plan wide enough that generated forces fit in it, a force on it, a drone with a
    key, a person; and a spare of each for the routes that delete."""
    admin, client = api.admin, api.client
    app: Any = client.app  # an ASGI application; the client's annotation is narrower
    plan = api.plan(
        max_drones=10_000,
        min_retention_days=1,
        max_retention_days=3_650,
        max_partitions=1_000,
        max_consumer_replicas=100,
    )
    spare = api.plan()
    force = api.force(plan["id"])
    victim = api.force(plan["id"])
    drones = f"/v1/forces/{force['id']}/drones"
    drone = _created(client.post(drones, json={"id": "drone-0001"}, headers=admin))
    _created(client.post(drones, json={"id": "drone-0002"}, headers=admin))
    key = _created(client.post(f"{drones}/{drone['id']}/keys", json={}, headers=admin))
    members = f"/v1/forces/{force['id']}/members"
    member = _created(
        client.post(
            members,
            json={"email": "victim@force.test", "display_name": "Victim", "role": "officer"},
            headers=admin,
        )
    )
    person = _created(
        client.post(
            members,
            json={
                "email": f"p-{uuid.uuid4().hex[:6]}@force.test",
                "display_name": "P",
                "role": "analyst",
            },
            headers=admin,
        )
    )
    password = person["initial_password"]
    return World(
        api=api,
        client=ASGIClient(app),
        plan_id=plan["id"],
        spare_plan_id=spare["id"],
        force_id=force["id"],
        victim_force_id=victim["id"],
        drone_id=drone["id"],
        victim_drone_id="drone-0002",
        key_id=key["key_id"],
        victim_user_id=member["user_id"],
        person=api.login(person["email"], password),
        person_password=[password],
        officer=api.login("victim@force.test", member["initial_password"]),
    )


def _cases(world: World, operation: Any) -> st.SearchStrategy[schemathesis.Case[Any]]:
    """Valid requests on existing resources, three times out of five; valid ones on made-up
    resources once; invalid ones once."""
    known = world.known(operation.method.upper(), operation.path)
    on_known = operation.as_strategy(path_parameters=known or None)
    anywhere = operation.as_strategy()
    invalid = operation.as_strategy(generation_mode=schemathesis.GenerationMode.NEGATIVE)
    return st.sampled_from([on_known, on_known, on_known, anywhere, invalid]).flatmap(lambda s: s)


def _server_error(exc: BaseException) -> str:
    """What a server-side exception says: its frames in PeaceLand's code, and the request."""
    frames = [
        f"  {f.filename.split('/peaceland/', 1)[-1]}:{f.lineno} in {f.name}: {f.line}"
        for f in traceback.extract_tb(exc.__traceback__)
        if "/peaceland/" in f.filename
    ]
    message = str(exc).splitlines()[0] if str(exc) else ""
    notes = "\n".join(getattr(exc, "__notes__", []))
    return "\n".join([f"{type(exc).__name__}: {message}", *frames, notes])


def _exercise(world: World, operation: Any) -> tuple[Counter[int], dict[str, str]]:
    """Run one operation's examples: the statuses seen, and each distinct failure (its
    first occurrence: every example runs, so that one failure hides no other)."""
    statuses: Counter[int] = Counter()
    failures: dict[str, str] = {}
    strategy = _cases(world, operation)
    budget = EXAMPLES_FOR.get((operation.method.upper(), operation.path), EXAMPLES)

    @settings(
        max_examples=budget,
        deadline=None,
        derandomize=True,
        database=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.filter_too_much,
            HealthCheck.data_too_large,
            HealthCheck.large_base_example,
        ],
    )
    @given(data=st.data())
    def exchange(data: st.DataObject) -> None:
        case = data.draw(strategy, label="case")
        headers = world.prepare(case, data)
        try:
            response = case.call(session=world.client, headers=headers)
        except Exception as exc:
            frames = traceback.extract_tb(exc.__traceback__)
            if not any("/starlette/" in f.filename for f in frames):
                raise  # not the application's: the request could not be sent
            # The application raised: ServerErrorMiddleware answered 500 and re-raised.
            statuses[500] += 1
            reason = str(exc).splitlines()[0][:100] if str(exc) else ""
            failures.setdefault(f"500 {type(exc).__name__}: {reason}", _server_error(exc))
            return
        statuses[response.status_code] += 1
        world.after(case, response.status_code)
        try:
            case.validate_response(response, checks=CHECKS, headers=headers)
        except FailureGroup as group:
            for failure in group.exceptions:
                key = f"{response.status_code} {getattr(failure, 'code', '')} {failure.title}"
                failures.setdefault(key, str(group))

    exchange()
    return statuses, failures


def _operations(schema: Any, group: str) -> list[Any]:
    operations = [result.ok() for result in schema.get_all_operations()]
    tagged = {op.label: (op.tags or []) for op in operations}
    untagged = [label for label, tags in tagged.items() if not set(tags) & set(GROUPS)]
    assert not untagged, f"routes in no group of this test: {untagged}"
    chosen = [
        op
        for op in operations
        if group in (op.tags or []) and (op.method.upper(), op.path) not in STREAMS
    ]
    return sorted(chosen, key=lambda op: (_ORDER.get(op.method.upper(), 9), op.path))


@pytest.mark.parametrize("group", [g for g in GROUPS if g != "alerts"])
def test_routes_keep_their_contract(api: Api, group: str):
    _check_group(api, _world(api), group)


def test_alert_routes_keep_their_contract(
    api: Api, kubectl: Kubectl, namespace: str, kafka_admin: AdminClient, cassandra: Session
):
    """On a force provisioned as the operator would, with an alert raised."""
    world = _world(api)
    made = provision(world.force_id, kubectl, namespace, kafka_admin, cassandra)
    try:
        world.alert_id = str(raise_alert(cassandra, made))
        _check_group(api, world, "alerts")
    finally:
        unprovision(made, kafka_admin, cassandra)


def _check_group(api: Api, world: World, group: str) -> None:
    document = api.client.get("/openapi.json").json()
    schema = schemathesis.openapi.from_dict(document, config=CONFIG)
    schema.app = api.client.app  # reached through World.client, an ASGI client never entered
    failures = []
    reached = {}
    for operation in _operations(schema, group):
        statuses, found = _exercise(world, operation)
        reached[operation.label] = dict(sorted(statuses.items()))
        failures += [f"=== {operation.label}: {key}\n{report}" for key, report in found.items()]
    assert not failures, "\n\n".join([*failures, f"statuses by route: {reached}"])
    # Most requests reach the handlers: each route answered with success at least once.
    unreached = {label: s for label, s in reached.items() if not any(200 <= c < 300 for c in s)}
    assert not unreached, f"routes that never succeeded: {unreached}"
