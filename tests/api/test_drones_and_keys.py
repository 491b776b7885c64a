"""Drones and their keys: registered within the plan, shown once, kept hashed, fed to the
gateways as changes after a cursor."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import text

from peaceland.api.kube import Forces, KubernetesUnavailableError
from peaceland.api.reconcile import ForceReconciler
from peaceland.tenants.drone_keys import KeyChanges, key_digest
from tests.api.conftest import Api, made_with_kubectl
from tests.operator.kube_helpers import Kubectl


def _force_with_admin(api: Api, **limits: Any) -> tuple[str, dict[str, str]]:
    plan = api.plan(**limits)
    force = api.force(plan["id"])
    return force["id"], api.member(force["id"], "force_admin")


def _feed(api: Api, cursor: int = 0) -> KeyChanges:
    answer = api.client.get(
        "/v1/internal/drone-keys", params={"cursor": cursor}, headers=api.gateway
    )
    assert answer.status_code == 200, answer.text
    return KeyChanges.model_validate(answer.json())


def test_a_drone_beyond_the_plan_is_refused(api: Api):
    force_id, boss = _force_with_admin(api, max_drones=2)
    url = f"/v1/forces/{force_id}/drones"
    for drone in ("d-1", "d-2"):
        assert api.client.post(url, json={"id": drone}, headers=boss).status_code == 201
    refused = api.client.post(url, json={"id": "d-3"}, headers=boss)
    assert refused.status_code == 409
    assert "2 drones" in refused.json()["detail"]
    # A retired drone frees its place.
    assert api.client.delete(f"{url}/d-1", headers=boss).status_code == 204
    assert api.client.post(url, json={"id": "d-3"}, headers=boss).status_code == 201


def test_a_key_is_shown_once_and_only_its_digest_is_kept(api: Api):
    force_id, boss = _force_with_admin(api)
    url = f"/v1/forces/{force_id}/drones"
    api.client.post(url, json={"id": "d-1"}, headers=boss)
    issued = api.client.post(f"{url}/d-1/keys", json={"expires_in_days": 30}, headers=boss).json()
    key = issued["key"]
    assert key.startswith(f"pld_{issued['key_id']}_")
    listed = api.client.get(f"{url}/d-1/keys", headers=boss).json()
    assert [k["key_id"] for k in listed] == [issued["key_id"]]
    assert "key" not in listed[0]
    with api.engine.connect() as connection:
        stored = connection.execute(text("SELECT digest FROM drone_keys")).scalars().all()
        everything = (
            connection.execute(text("SELECT row_to_json(k)::text FROM drone_keys k"))
            .scalars()
            .all()
        )
    assert stored == [key_digest(key)]
    assert not any(key in row for row in everything)


def test_a_drone_holds_two_live_keys_at_most_for_a_rotation(api: Api):
    force_id, boss = _force_with_admin(api)
    url = f"/v1/forces/{force_id}/drones"
    api.client.post(url, json={"id": "d-1"}, headers=boss)
    first = api.client.post(f"{url}/d-1/keys", headers=boss).json()
    api.client.post(f"{url}/d-1/keys", headers=boss)
    third = api.client.post(f"{url}/d-1/keys", headers=boss)
    assert third.status_code == 409
    assert first["key_id"] in third.json()["detail"]
    assert api.client.delete(f"{url}/d-1/keys/{first['key_id']}", headers=boss).status_code == 204
    assert api.client.post(f"{url}/d-1/keys", headers=boss).status_code == 201


def test_the_feed_gives_new_keys_then_their_revocation_after_a_cursor(api: Api):
    force_id, boss = _force_with_admin(api)
    url = f"/v1/forces/{force_id}/drones"
    api.client.post(url, json={"id": "d-1"}, headers=boss)
    api.client.post(url, json={"id": "d-2"}, headers=boss)
    one = api.client.post(f"{url}/d-1/keys", headers=boss).json()
    two = api.client.post(f"{url}/d-2/keys", headers=boss).json()
    start = _feed(api)
    grants = {g.key_id: g for g in start.grants}
    assert grants[one["key_id"]].drone_id == "d-1"
    assert grants[two["key_id"]].force_id == force_id
    assert grants[one["key_id"]].digest == key_digest(one["key"])
    assert _feed(api, start.cursor).grants == []
    api.client.delete(f"{url}/d-1/keys/{one['key_id']}", headers=boss)
    api.client.delete(f"{url}/d-2", headers=boss)  # retiring a drone revokes its keys
    later = _feed(api, start.cursor)
    assert sorted(later.revoked) == sorted([one["key_id"], two["key_id"]])
    assert later.cursor > start.cursor


def test_deleting_a_force_revokes_every_key_of_it(api: Api):
    force_id, boss = _force_with_admin(api)
    url = f"/v1/forces/{force_id}/drones"
    api.client.post(url, json={"id": "d-1"}, headers=boss)
    key = api.client.post(f"{url}/d-1/keys", headers=boss).json()
    cursor = _feed(api).cursor
    assert api.client.delete(f"/v1/forces/{force_id}", headers=api.admin).status_code == 202
    assert _feed(api, cursor).revoked == [key["key_id"]]


def test_usage_posted_twice_is_counted_once_and_priced_from_the_plan(api: Api):
    force_id, boss = _force_with_admin(
        api, monthly_price_cents=10_000, price_per_million_reports_cents=300
    )
    batch = {
        "batch_id": "batch-0001",
        "reports": {force_id: {"2026-11-03": 1_500_000, "2026-11-04": 1}},
    }
    for _ in range(2):
        assert (
            api.client.post("/v1/internal/usage", json=batch, headers=api.gateway).status_code
            == 204
        )
    api.client.post(
        "/v1/internal/usage",
        json={"batch_id": "batch-0002", "reports": {force_id: {"2026-11-04": 2}}},
        headers=api.gateway,
    )
    invoice = api.client.get(
        f"/v1/forces/{force_id}/invoice", params={"month": "2026-11"}, headers=boss
    ).json()
    assert [d["reports_accepted"] for d in invoice["days"]] == [1_500_000, 3]
    assert invoice["reports_accepted"] == 1_500_003
    assert invoice["reports_price_cents"] == 451  # 1.500003 million x 3 EUR, rounded up
    assert invoice["total_cents"] == 10_451


def test_the_feed_and_usage_are_the_gateways_alone(api: Api):
    _, boss = _force_with_admin(api)
    assert api.client.get("/v1/internal/drone-keys", headers=boss).status_code == 403
    assert api.client.get("/v1/internal/drone-keys", headers=api.admin).status_code == 403
    posted = api.client.post("/v1/internal/usage", json={"batch_id": "x" * 8}, headers=boss)
    assert posted.status_code == 403
    assert api.client.get("/v1/me", headers=api.gateway).status_code == 403


def test_a_retired_drone_registered_again_comes_back_without_its_old_keys(api: Api):
    force_id, boss = _force_with_admin(api)
    url = f"/v1/forces/{force_id}/drones"
    api.client.post(url, json={"id": "d-1"}, headers=boss)
    old = api.client.post(f"{url}/d-1/keys", headers=boss).json()
    api.client.delete(f"{url}/d-1", headers=boss)
    assert api.client.post(f"{url}/d-1/keys", headers=boss).status_code == 409
    assert api.client.post(url, json={"id": "d-1"}, headers=boss).status_code == 201
    states = {
        k["key_id"]: k["state"] for k in api.client.get(f"{url}/d-1/keys", headers=boss).json()
    }
    assert states == {old["key_id"]: "revoked"}


def test_a_force_deleted_with_kubectl_loses_its_keys_and_people_within_two_passes(
    api: Api, kubectl: Kubectl, namespace: str
):
    kubectl.apply(made_with_kubectl("by-hand"), namespace)
    kubectl.apply(made_with_kubectl("keeper"), namespace)
    boss = api.member("by-hand", "force_admin")
    keeper = api.member("keeper", "officer")
    api.client.post("/v1/forces/by-hand/drones", json={"id": "d-1"}, headers=boss)
    key = api.client.post("/v1/forces/by-hand/drones/d-1/keys", headers=boss).json()
    start = _feed(api)
    assert key["key_id"] in {g.key_id for g in start.grants}
    kubectl("delete", "policeforce", "by-hand", "-n", namespace)
    reconciler = ForceReconciler(
        api.app.state.sessions, api.app.state.forces, interval=60, absent_for=0
    )
    assert reconciler.reconcile() == []  # absent once: not yet (a list may be mid-change)
    assert reconciler.reconcile() == ["by-hand"]
    assert _feed(api, start.cursor).revoked == [key["key_id"]]
    assert api.client.get("/v1/me", headers=boss).json()["roles"] == {}
    assert reconciler.reconcile() == []
    assert api.client.get("/v1/me", headers=keeper).json()["roles"] == {"keeper": "officer"}


def test_a_list_that_looks_wrong_makes_the_reconciler_forget_nothing(
    api: Api, kubectl: Kubectl, namespace: str
):
    force_ids = [api.force(api.plan()["id"])["id"] for _ in range(3)]
    wrong = Forces(api.app.state.forces._client, "no-such-namespace")
    reconciler = ForceReconciler(api.app.state.sessions, wrong, interval=60, absent_for=0)
    assert reconciler.reconcile() == []
    assert reconciler.reconcile() == []  # an empty list: none forgotten
    kubectl.apply(made_with_kubectl("lonely", "Lonely", 1, 1), "default")
    elsewhere = Forces(api.app.state.forces._client, "default")
    reconciler = ForceReconciler(api.app.state.sessions, elsewhere, interval=60, absent_for=0)
    assert reconciler.reconcile() == []
    assert reconciler.reconcile() == []  # all three at once: none forgotten
    kubectl("delete", "policeforce", "lonely", "-n", "default")
    for force_id in force_ids:
        assert api.client.get(f"/v1/forces/{force_id}", headers=api.admin).status_code == 200
        assert (
            api.client.get(
                f"/v1/forces/{force_id}/audit?action=force.gone", headers=api.admin
            ).json()["items"]
            == []
        )


def test_a_leaked_key_is_found_by_the_id_it_carries_and_revoked_everywhere(api: Api):
    force_id, boss = _force_with_admin(api)
    api.client.post(f"/v1/forces/{force_id}/drones", json={"id": "d-1"}, headers=boss)
    leaked = api.client.post(f"/v1/forces/{force_id}/drones/d-1/keys", headers=boss).json()["key"]
    key_id = leaked.split("_")[1]
    assert api.client.get(f"/v1/keys/{key_id}", headers=boss).status_code == 403
    found = api.client.get(f"/v1/keys/{key_id}", headers=api.admin).json()
    assert (found["force_id"], found["drone_id"], found["state"]) == (force_id, "d-1", "live")
    cursor = _feed(api).cursor
    assert api.client.delete(f"/v1/keys/{key_id}", headers=api.admin).status_code == 204
    assert _feed(api, cursor).revoked == [key_id]
    events = api.client.get(f"/v1/forces/{force_id}/audit?action=key.revoked", headers=boss)
    assert events.json()["items"][0]["actor"] == "admin@peaceland.test"


def _measured(kubectl: Kubectl, namespace: str, force_id: str, **usage: Any) -> None:
    """The usage the operator would have measured of the force, written into its status."""
    patch = json.dumps({"status": {"usage": usage}})
    kubectl("patch", "policeforce", force_id, "-n", namespace, "--subresource=status",
            "--type=merge", "-p", patch)  # fmt: skip


def _reconciler(api: Api) -> ForceReconciler:
    return ForceReconciler(api.app.state.sessions, api.app.state.forces, interval=60)


def test_the_bytes_stored_as_the_operator_measured_them_are_on_the_invoice(
    api: Api, kubectl: Kubectl, namespace: str
):
    force_id, boss = _force_with_admin(api)
    reconciler = _reconciler(api)
    mib = 1 << 20
    _measured(kubectl, namespace, force_id, measuredAt="2026-11-04T10:00:00Z",
              storageBytes=3 * mib)  # fmt: skip
    reconciler.reconcile()
    # Later that day, compaction shrank it: the day keeps its most. Then the next day.
    _measured(kubectl, namespace, force_id, measuredAt="2026-11-04T10:01:00Z",
              storageBytes=2 * mib)  # fmt: skip
    reconciler.reconcile()
    reconciler.reconcile()  # the same measure again changes nothing
    _measured(kubectl, namespace, force_id, measuredAt="2026-11-05T00:00:10Z",
              storageBytes=2 * mib)  # fmt: skip
    reconciler.reconcile()
    invoice = api.client.get(
        f"/v1/forces/{force_id}/invoice", params={"month": "2026-11"}, headers=boss
    ).json()
    days = {d["day"]: d["storage_bytes"] for d in invoice["days"]}
    assert days == {"2026-11-04": 3 * mib, "2026-11-05": 2 * mib}
    assert invoice["peak_storage_bytes"] == 3 * mib
    assert (invoice["reports_accepted"], invoice["alerts_raised"]) == (0, 0)


def _usage_rows(api: Api, force_id: str) -> int:
    with api.engine.connect() as connection:
        return int(
            connection.execute(
                text("SELECT count(*) FROM daily_usage WHERE force_id = :id"), {"id": force_id}
            ).scalar_one()
        )


def test_a_force_forgotten_while_its_resource_lingers_gets_no_usage_but_one_sold_again_does(
    api: Api, kubectl: Kubectl, namespace: str, monkeypatch: pytest.MonkeyPatch
):
    force_id = "sold-twice"
    kubectl.apply(made_with_kubectl(force_id), namespace)
    api.member(force_id, "force_admin")
    reconciler = _reconciler(api)

    def unreachable(name: str) -> bool:
        raise KubernetesUnavailableError("the API server did not answer")

    # The deletion commits what the API keeps (keys revoked, data archived), then cannot
    # delete the resource: it stays, not even being deleted, with its operator measuring it.
    with monkeypatch.context() as patched:
        patched.setattr(api.app.state.forces, "delete", unreachable)
        assert api.client.delete(f"/v1/forces/{force_id}", headers=api.admin).status_code == 503
    _measured(kubectl, namespace, force_id, measuredAt="2026-11-04T10:00:00Z",
              storageBytes=1 << 20)  # fmt: skip
    reconciler.reconcile()
    assert _usage_rows(api, force_id) == 0
    # The same id sold again, at once (within the same second): a new resource, a new UID.
    kubectl("delete", "policeforce", force_id, "-n", namespace)
    kubectl.apply(made_with_kubectl(force_id), namespace)
    _measured(kubectl, namespace, force_id, measuredAt="2026-11-04T10:00:01Z",
              storageBytes=2 << 20)  # fmt: skip
    reconciler.reconcile()
    assert _usage_rows(api, force_id) == 1
