"""One force never sees another's data: every route, every role, another force's id."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.routing import APIRoute

from peaceland.api import auth
from peaceland.api.app import ROUTERS
from tests.api.conftest import Api

ROLES = ("force_admin", "officer", "analyst")
SAMPLE: dict[str, Any] = {
    "drone_id": "secret-drone",
    "key_id": "a" * 16,
    "user_id": 1,
    "alert_id": "6f0d3f5e-3c1a-4b8e-9a57-2f1e0c9b7d41",
}
BODIES: dict[str, Any] = {
    "POST /v1/forces/{force_id}/drones": {"id": "x-1"},
    "POST /v1/forces/{force_id}/members": {
        "email": "x@x.test",
        "display_name": "X",
        "role": "officer",
    },
    "PATCH /v1/forces/{force_id}": {"display_name": "Taken over"},
    "POST /v1/forces/{force_id}/alerts/{alert_id}/transitions": {"action": "acknowledge"},
    "POST /v1/forces/{force_id}/sql": {"query": "SELECT count(*) FROM reports"},
}
SAMPLE["name"] = "coverage"


def _routes() -> list[APIRoute]:
    return [r for router in ROUTERS for r in router.routes if isinstance(r, APIRoute)]


def _force_routes() -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    for route in _routes():
        if "{force_id}" in route.path:
            found.extend((method, route.path) for method in sorted(route.methods or ()))
    return found


def _dependencies(route: APIRoute) -> set[Any]:
    seen: set[Any] = set()
    stack = [route.dependant]
    while stack:
        dependant = stack.pop()
        seen.add(dependant.call)
        stack.extend(dependant.dependencies)
    return seen


def test_every_route_but_sign_in_asks_who_is_calling():
    open_routes = {"/v1/auth/token"}
    checked = 0
    for route in _routes():
        if route.path not in open_routes:
            assert auth.principal in _dependencies(route), route.path
            checked += 1
    assert checked >= 25


@pytest.fixture
def two_forces(api: Api) -> dict[str, Any]:
    plan = api.plan()
    mine, theirs = api.force(plan["id"]), api.force(plan["id"], display_name="Their force")
    their_admin = api.member(theirs["id"], "force_admin")
    api.client.post(
        f"/v1/forces/{theirs['id']}/drones", json={"id": "secret-drone"}, headers=their_admin
    )
    api.client.post(f"/v1/forces/{theirs['id']}/drones/secret-drone/keys", headers=their_admin)
    return {
        "mine": mine["id"],
        "theirs": theirs["id"],
        "people": {r: api.member(mine["id"], r) for r in ROLES},
    }


def test_no_role_of_one_force_reaches_another_force_by_any_route(
    api: Api, two_forces: dict[str, Any]
):
    routes = _force_routes()
    assert len(routes) >= 12
    theirs = two_forces["theirs"]
    for role, headers in two_forces["people"].items():
        for method, path in routes:
            url = path.format(force_id=theirs, **SAMPLE)
            body = BODIES.get(f"{method} {path}")
            answer = api.client.request(
                method, url, json=body, headers={**headers, "If-Match": '"1"'}
            )
            assert answer.status_code in (403, 404), (role, method, path, answer.status_code)
            # The problem's ``instance`` echoes the path asked for; nothing else may name them.
            shown = str({k: v for k, v in answer.json().items() if k != "instance"})
            assert "secret-drone" not in shown
            assert "Their force" not in shown
    # Nothing was changed on their side either.
    admin = api.admin
    drones = api.client.get(f"/v1/forces/{theirs}/drones", headers=admin).json()["items"]
    assert [d["id"] for d in drones] == ["secret-drone"]
    shown = api.client.get(f"/v1/forces/{theirs}", headers=admin).json()
    assert shown["display_name"] == "Their force"


def test_lists_show_only_the_forces_a_person_belongs_to(api: Api, two_forces: dict[str, Any]):
    for headers in two_forces["people"].values():
        listed = api.client.get("/v1/forces", headers=headers).json()["items"]
        assert [f["id"] for f in listed] == [two_forces["mine"]]


def test_platform_routes_are_refused_to_every_force_role(api: Api, two_forces: dict[str, Any]):
    platform = [("GET", "/v1/plans"), ("POST", "/v1/forces"), ("GET", "/v1/audit"),
                ("GET", "/v1/internal/drone-keys"), ("POST", "/v1/internal/usage")]  # fmt: skip
    for headers in two_forces["people"].values():
        for method, url in platform:
            answer = api.client.request(method, url, json={}, headers=headers)
            assert answer.status_code in (403, 422), (method, url)
            if answer.status_code == 422:  # the body was judged first: still never data
                assert "items" not in answer.json()


def test_a_force_admin_reads_only_their_own_forces_audit(api: Api, two_forces: dict[str, Any]):
    boss = two_forces["people"]["force_admin"]
    events = api.client.get(f"/v1/forces/{two_forces['mine']}/audit", headers=boss).json()["items"]
    assert events
    assert {e["force_id"] for e in events} == {two_forces["mine"]}
    assert not re.search("secret-drone", str(events))


def test_another_forces_real_key_and_person_are_not_reachable_through_ones_own_force(
    api: Api, two_forces: dict[str, Any]
):
    mine, theirs = two_forces["mine"], two_forces["theirs"]
    their_keys = api.client.get(
        f"/v1/forces/{theirs}/drones/secret-drone/keys", headers=api.admin
    ).json()
    their_people = api.client.get(f"/v1/forces/{theirs}/members", headers=api.admin).json()
    boss = two_forces["people"]["force_admin"]
    api.client.post(f"/v1/forces/{mine}/drones", json={"id": "secret-drone"}, headers=boss)
    key_id = their_keys[0]["key_id"]
    revoke = api.client.delete(f"/v1/forces/{mine}/drones/secret-drone/keys/{key_id}", headers=boss)
    assert revoke.status_code == 404
    user_id = their_people["items"][0]["user_id"]
    remove = api.client.delete(f"/v1/forces/{mine}/members/{user_id}", headers=boss)
    assert remove.status_code == 404
    still = api.client.get(f"/v1/forces/{theirs}/drones/secret-drone/keys", headers=api.admin)
    assert still.json()[0]["state"] == "live"
    listed = api.client.get(f"/v1/forces/{mine}/drones/secret-drone/keys", headers=boss).json()
    assert key_id not in {k["key_id"] for k in listed}
