"""Plans and forces through the API, against the real kube-apiserver and PostgreSQL."""

from __future__ import annotations

import json
import time

from tests.api.conftest import ADMIN_EMAIL, Api, made_with_kubectl
from tests.operator.kube_helpers import Kubectl

PROBLEM = "application/problem+json"


def test_a_force_created_through_the_api_is_a_policeforce_on_its_plan(
    api: Api, kubectl: Kubectl, namespace: str
):
    plan = api.plan(max_drones=7, max_reports_per_second=321)
    created = api.force(plan["id"], alerting={"score_threshold": 12.5, "dedup_window_seconds": 60})
    assert created["status"]["ready"] is False
    resource = kubectl.get("policeforce", created["id"], namespace)
    assert resource["metadata"]["annotations"]["peaceland.io/plan"] == plan["id"]
    assert resource["spec"]["plan"] == {"maxDrones": 7, "maxReportsPerSecond": 321}
    assert resource["spec"]["alerting"] == {"scoreThreshold": 12.5, "dedupWindowSeconds": 60}
    assert resource["spec"]["kafka"]["replicationFactor"] == 1
    shown_fields = kubectl(
        "get", "policeforce", created["id"], "-n", namespace, "-o", "json", "--show-managed-fields"
    ).stdout
    managers = {m["manager"] for m in json.loads(shown_fields)["metadata"]["managedFields"]}
    assert "peaceland-api" in managers
    shown = api.client.get(f"/v1/forces/{created['id']}", headers=api.admin).json()
    assert shown["plan_id"] == plan["id"]
    assert shown["max_reports_per_second"] == 321


def test_a_force_made_with_kubectl_shows_up_in_the_api(api: Api, kubectl: Kubectl, namespace: str):
    kubectl.apply(made_with_kubectl("by-hand"), namespace)
    listed = api.client.get("/v1/forces", headers=api.admin).json()["items"]
    by_hand = next(f for f in listed if f["id"] == "by-hand")
    assert by_hand["plan_id"] is None
    assert by_hand["max_drones"] == 3
    assert by_hand["status"]["phase"] == "Pending"


def test_creating_a_force_that_exists_is_a_conflict_with_a_problem_body(api: Api):
    plan = api.plan()
    force = api.force(plan["id"])
    again = api.client.post(
        "/v1/forces",
        json={"id": force["id"], "display_name": "Again", "plan_id": plan["id"]},
        headers=api.admin,
    )
    assert again.status_code == 409
    assert again.headers["content-type"] == PROBLEM
    assert again.json()["errors"][0]["field"] == "body.id"


def test_a_change_outside_the_plan_is_refused_naming_the_field(api: Api):
    plan = api.plan(min_retention_days=7, max_retention_days=30, max_partitions=4)
    force = api.force(plan["id"])
    etag = api.client.get(f"/v1/forces/{force['id']}", headers=api.admin).headers["etag"]
    answer = api.client.patch(
        f"/v1/forces/{force['id']}",
        json={"retention_days": 31},
        headers={**api.admin, "If-Match": etag},
    )
    assert answer.status_code == 422
    assert answer.json()["errors"][0]["field"] == "body.retention_days"
    assert "7 to 30 days" in answer.json()["detail"]


def test_a_change_needs_the_version_read_and_a_stale_one_is_refused(
    api: Api, kubectl: Kubectl, namespace: str
):
    plan = api.plan()
    force = api.force(plan["id"])
    url = f"/v1/forces/{force['id']}"
    body = {"alerting": {"score_threshold": 10, "dedup_window_seconds": 30}}
    assert api.client.patch(url, json=body, headers=api.admin).status_code == 428
    etag = api.client.get(url, headers=api.admin).headers["etag"]
    # Someone else changes the force meanwhile.
    kubectl("patch", "policeforce", force["id"], "-n", namespace, "--type=merge",
            "-p", json.dumps({"spec": {"retentionDays": 20}}))  # fmt: skip
    stale = api.client.patch(url, json=body, headers={**api.admin, "If-Match": etag})
    assert stale.status_code == 412
    fresh = api.client.get(url, headers=api.admin).headers["etag"]
    done = api.client.patch(url, json=body, headers={**api.admin, "If-Match": fresh})
    assert done.status_code == 200, done.text
    spec = kubectl.get("policeforce", force["id"], namespace)["spec"]
    assert spec["alerting"]["scoreThreshold"] == 10
    assert spec["retentionDays"] == 20  # the other change is kept


def test_a_force_admin_changes_alerting_but_not_the_plan(api: Api):
    plan = api.plan()
    other = api.plan()
    force = api.force(plan["id"])
    boss = api.member(force["id"], "force_admin")
    url = f"/v1/forces/{force['id']}"
    etag = api.client.get(url, headers=boss).headers["etag"]
    refused = api.client.patch(
        url, json={"plan_id": other["id"]}, headers={**boss, "If-Match": etag}
    )
    assert refused.status_code == 403
    assert refused.json()["errors"][0]["field"] == "body.plan_id"
    done = api.client.patch(
        url,
        json={"alerting": {"score_threshold": 33, "dedup_window_seconds": 120}},
        headers={**boss, "If-Match": etag},
    )
    assert done.status_code == 200, done.text
    assert done.json()["alerting"]["score_threshold"] == 33


def test_a_create_sent_twice_with_one_idempotency_key_makes_one_force(api: Api):
    plan = api.plan()
    body = {"id": "twice", "display_name": "Twice", "plan_id": plan["id"]}
    headers = {**api.admin, "Idempotency-Key": "create-twice-1"}
    first = api.client.post("/v1/forces", json=body, headers=headers)
    second = api.client.post("/v1/forces", json=body, headers=headers)
    assert first.status_code == second.status_code == 202
    assert first.json() == second.json()
    other = api.client.post("/v1/forces", json={**body, "display_name": "Other"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"


def test_deleting_a_force_deletes_its_policeforce_and_its_people(
    api: Api, kubectl: Kubectl, namespace: str
):
    plan = api.plan()
    force = api.force(plan["id"])
    officer = api.member(force["id"], "officer")
    assert api.client.delete(f"/v1/forces/{force['id']}", headers=api.admin).status_code == 202
    found = kubectl.find("policeforce", force["id"], namespace)
    assert found is None or "deletionTimestamp" in found["metadata"]
    assert api.client.get(f"/v1/forces/{force['id']}", headers=officer).status_code == 404


def test_plans_are_the_platform_admins_alone(api: Api):
    plan = api.plan()
    force = api.force(plan["id"])
    boss = api.member(force["id"], "force_admin")
    assert api.client.get("/v1/plans", headers=boss).status_code == 403
    assert api.client.post("/v1/plans", json={}, headers=boss).status_code in (403, 422)
    etag = api.client.get(f"/v1/plans/{plan['id']}", headers=api.admin).headers["etag"]
    changed = api.client.patch(
        f"/v1/plans/{plan['id']}", json={"max_drones": 9}, headers={**api.admin, "If-Match": etag}
    )
    assert changed.status_code == 200
    assert changed.json()["max_drones"] == 9
    again = api.client.patch(
        f"/v1/plans/{plan['id']}", json={"max_drones": 10}, headers={**api.admin, "If-Match": etag}
    )
    assert again.status_code == 412
    assert api.client.delete(f"/v1/plans/{plan['id']}", headers=api.admin).status_code == 409


def test_a_force_deleted_with_kubectl_can_be_sold_again_and_starts_empty(
    api: Api, kubectl: Kubectl, namespace: str
):
    plan = api.plan()
    force = api.force(plan["id"])
    officer = api.member(force["id"], "officer")
    boss = api.member(force["id"], "force_admin")
    api.client.post(f"/v1/forces/{force['id']}/drones", json={"id": "d-1"}, headers=boss)
    kubectl("patch", "policeforce", force["id"], "-n", namespace, "--type=merge",
            "-p", '{"metadata":{"finalizers":null}}')  # fmt: skip
    kubectl("delete", "policeforce", force["id"], "-n", namespace)
    again = api.client.post(
        "/v1/forces",
        json={"id": force["id"], "display_name": "Again", "plan_id": plan["id"]},
        headers=api.admin,
    )
    assert again.status_code == 202, again.text
    assert api.client.get(f"/v1/forces/{force['id']}", headers=officer).status_code == 404
    drones = api.client.get(f"/v1/forces/{force['id']}/drones", headers=api.admin).json()
    assert drones["items"] == []


def test_a_force_admin_manages_its_people_and_each_read_of_them_is_audited(api: Api):
    force = api.force(api.plan()["id"])
    boss = api.member(force["id"], "force_admin")
    officer_email = "someone@x.test"
    added = api.client.post(
        f"/v1/forces/{force['id']}/members",
        json={"email": officer_email, "display_name": "Someone", "role": "officer"},
        headers=boss,
    )
    assert added.status_code == 201
    listed = api.client.get(f"/v1/forces/{force['id']}/members", params={"limit": 1}, headers=boss)
    page = listed.json()
    assert len(page["items"]) == 1
    rest = api.client.get(
        f"/v1/forces/{force['id']}/members", params={"cursor": page["next_cursor"]}, headers=boss
    ).json()
    emails = {m["email"] for m in page["items"] + rest["items"]}
    assert officer_email in emails
    assert rest["next_cursor"] is None
    audit = api.client.get(
        f"/v1/forces/{force['id']}/audit", params={"action": "members.read"}, headers=boss
    ).json()["items"]
    assert len(audit) == 2
    removed = api.client.delete(
        f"/v1/forces/{force['id']}/members/{added.json()['user_id']}", headers=boss
    )
    assert removed.status_code == 204
    me = api.client.get("/v1/me", headers=boss).json()
    assert (
        api.client.delete(
            f"/v1/forces/{force['id']}/members/{me['user_id']}", headers=boss
        ).status_code
        == 409
    )


def test_the_operator_writing_the_status_does_not_invalidate_the_version_read(
    api: Api, kubectl: Kubectl, namespace: str
):
    force = api.force(api.plan()["id"])
    url = f"/v1/forces/{force['id']}"
    etag = api.client.get(url, headers=api.admin).headers["etag"]
    # The operator reports progress: the status changes, the spec does not.
    kubectl("patch", "policeforce", force["id"], "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps({"status": {"phase": "Provisioning"}}))  # fmt: skip
    body = {"alerting": {"score_threshold": 11, "dedup_window_seconds": 30}}
    changed = api.client.patch(url, json=body, headers={**api.admin, "If-Match": etag})
    assert changed.status_code == 200, changed.text
    assert changed.json()["status"]["phase"] == "Provisioning"


def test_a_force_sold_again_under_a_deleted_id_shows_nothing_of_the_old_one(api: Api):
    plan = api.plan(price_per_million_reports_cents=1_000)
    force_id = api.force(plan["id"])["id"]
    boss = api.member(force_id, "force_admin")
    api.client.post(f"/v1/forces/{force_id}/drones", json={"id": "old-drone"}, headers=boss)
    api.client.post(f"/v1/forces/{force_id}/drones/old-drone/keys", headers=boss)
    api.client.post(
        "/v1/internal/usage",
        json={"batch_id": "old-usage-1", "reports": {force_id: {"2026-11-02": 2_000_000}}},
        headers=api.gateway,
    )
    assert api.client.delete(f"/v1/forces/{force_id}", headers=api.admin).status_code == 202
    # A member cannot be added to a force that is gone.
    late = api.client.post(
        f"/v1/forces/{force_id}/members",
        json={"email": "late@x.test", "display_name": "Late", "role": "officer"},
        headers=api.admin,
    )
    assert late.status_code in (404, 409)
    _gone(api, force_id)  # no operator here: no finalizer holds it
    again = api.force(plan["id"], force_id=force_id)
    new_boss = api.member(again["id"], "force_admin")
    base = f"/v1/forces/{force_id}"
    assert api.client.get(f"{base}/drones?retired=true", headers=new_boss).json()["items"] == []
    invoice = api.client.get(f"{base}/invoice?month=2026-11", headers=new_boss).json()
    assert invoice["reports_accepted"] == 0
    events = api.client.get(f"{base}/audit", headers=new_boss).json()["items"]
    assert not [e for e in events if e["action"] in ("key.issued", "drone.registered")]
    assert api.client.get(base, headers=boss).status_code == 404
    # The platform admin still reads the old force's history, under its archived name.
    history = api.client.get("/v1/audit?action=force.deleted", headers=api.admin).json()
    assert history["items"][0]["force_id"].startswith(f"{force_id}~")


def _gone(api: Api, force_id: str) -> None:
    """Wait until the PoliceForce is gone (no operator: its finalizers are none here)."""
    deadline = time.monotonic() + 30
    while api.app.state.forces.get(force_id) is not None:
        assert time.monotonic() < deadline
        time.sleep(0.2)


def test_a_force_admin_cannot_attach_an_account_that_exists_and_its_owner_keeps_it(api: Api):
    mine = api.force(api.plan()["id"])["id"]
    theirs = api.force(api.plan()["id"])["id"]
    their_boss = api.member(theirs, "force_admin")
    their_email = api.client.get("/v1/me", headers=their_boss).json()["email"]
    my_boss = api.member(mine, "force_admin")
    for email in (their_email, ADMIN_EMAIL.upper()):
        answer = api.client.post(
            f"/v1/forces/{mine}/members",
            json={"email": email, "display_name": "Pre-claimed", "role": "force_admin"},
            headers=my_boss,
        )
        assert answer.status_code == 409
        assert "user_id" not in answer.text
        assert "Platform admin" not in answer.text
    # A platform admin may; the account then gets a new first password and its sessions
    # end, so whoever made it (to pre-claim the address, say) loses it.
    added = api.client.post(
        f"/v1/forces/{mine}/members",
        json={"email": their_email, "display_name": "Same person", "role": "analyst"},
        headers=api.admin,
    )
    assert added.status_code == 201
    assert added.json()["initial_password"]
    assert api.client.get("/v1/me", headers=their_boss).status_code == 401
    again = api.login(their_email, added.json()["initial_password"])
    assert api.client.get("/v1/me", headers=again).json()["roles"] == {
        theirs: "force_admin",
        mine: "analyst",
    }


def test_the_admin_of_a_force_made_with_kubectl_waits_for_a_plan_to_change_it(
    api: Api, kubectl: Kubectl, namespace: str
):
    kubectl.apply(made_with_kubectl("no-plan", "No plan"), namespace)
    boss = api.member("no-plan", "force_admin")
    etag = api.client.get("/v1/forces/no-plan", headers=boss).headers["etag"]
    refused = api.client.patch(
        "/v1/forces/no-plan", json={"partitions": 1000}, headers={**boss, "If-Match": etag}
    )
    assert refused.status_code == 409
    assert "no plan" in refused.json()["detail"]


def test_a_plan_change_reaches_its_forces_and_a_lowered_bound_blocks_no_other_change(
    api: Api, kubectl: Kubectl, namespace: str
):
    plan = api.plan(max_partitions=6, max_drones=5)
    force_id = api.force(plan["id"], partitions=6)["id"]
    boss = api.member(force_id, "force_admin")
    plan_url = f"/v1/plans/{plan['id']}"
    etag = api.client.get(plan_url, headers=api.admin).headers["etag"]
    lowered = api.client.patch(
        plan_url,
        json={"max_partitions": 3, "max_drones": 2, "max_reports_per_second": 7},
        headers={**api.admin, "If-Match": etag},
    )
    assert lowered.status_code == 200
    spec = kubectl.get("policeforce", force_id, namespace)["spec"]
    assert spec["plan"] == {"maxDrones": 2, "maxReportsPerSecond": 7}
    url = f"/v1/forces/{force_id}"
    etag = api.client.get(url, headers=boss).headers["etag"]
    alerting = {"alerting": {"score_threshold": 9, "dedup_window_seconds": 60}}
    changed = api.client.patch(url, json=alerting, headers={**boss, "If-Match": etag})
    assert changed.status_code == 200, changed.text
    grow = api.client.patch(
        url, json={"partitions": 8}, headers={**boss, "If-Match": changed.headers["etag"]}
    )
    assert grow.status_code == 422


def test_an_invoice_keeps_the_prices_its_days_were_counted_under(api: Api):
    plan = api.plan(monthly_price_cents=1_000, price_per_million_reports_cents=100)
    force_id = api.force(plan["id"])["id"]
    api.client.post(
        "/v1/internal/usage",
        json={"batch_id": "priced-day-1", "reports": {force_id: {"2026-10-05": 1_000_000}}},
        headers=api.gateway,
    )
    url = f"/v1/forces/{force_id}/invoice?month=2026-10"
    before = api.client.get(url, headers=api.admin).json()
    etag = api.client.get(f"/v1/plans/{plan['id']}", headers=api.admin).headers["etag"]
    api.client.patch(
        f"/v1/plans/{plan['id']}",
        json={"monthly_price_cents": 999_999, "price_per_million_reports_cents": 999_999},
        headers={**api.admin, "If-Match": etag},
    )
    assert api.client.get(url, headers=api.admin).json() == before
    assert before["total_cents"] == 1_100
    force_etag = api.client.get(f"/v1/forces/{force_id}", headers=api.admin).headers["etag"]
    other = api.plan()
    api.client.patch(
        f"/v1/forces/{force_id}",
        json={"plan_id": other["id"]},
        headers={**api.admin, "If-Match": force_etag},
    )
    refused = api.client.delete(f"/v1/plans/{plan['id']}", headers=api.admin)
    assert refused.status_code == 409
