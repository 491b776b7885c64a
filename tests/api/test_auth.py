"""Signing in, and every way a token can be wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import text

from peaceland.api.problems import Problem
from peaceland.api.throttle import SignInThrottle
from tests.api.conftest import ADMIN_EMAIL, Api


def _expire_sessions(api: Api) -> None:
    with api.engine.begin() as connection:
        connection.execute(
            text("UPDATE sessions SET expires_at = :past"),
            {"past": datetime.now(UTC) - timedelta(seconds=1)},
        )


def test_a_wrong_password_and_an_unknown_account_get_the_same_answer(api: Api):
    wrong = api.client.post("/v1/auth/token", json={"email": ADMIN_EMAIL, "password": "nope"})
    unknown = api.client.post("/v1/auth/token", json={"email": "who@x.test", "password": "nope"})
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json()["detail"] == unknown.json()["detail"]
    assert wrong.headers["content-type"] == "application/problem+json"


def test_passwords_are_kept_as_argon2id_hashes(api: Api):
    with api.engine.connect() as connection:
        stored = connection.execute(text("SELECT password_hash FROM users")).scalar_one()
    assert stored.startswith("$argon2id$")
    assert api.admin_password not in stored


def test_an_expired_token_is_refused_saying_so(api: Api):
    headers = api.login(ADMIN_EMAIL, api.admin_password)
    assert api.client.get("/v1/me", headers=headers).status_code == 200
    _expire_sessions(api)
    answer = api.client.get("/v1/me", headers=headers)
    assert answer.status_code == 401
    assert "expired" in answer.json()["detail"]
    assert answer.headers["www-authenticate"] == "Bearer"


def test_a_token_ended_by_logout_is_refused_from_the_next_request(api: Api):
    headers = api.login(ADMIN_EMAIL, api.admin_password)
    assert api.client.post("/v1/auth/logout", headers=headers).status_code == 204
    answer = api.client.get("/v1/me", headers=headers)
    assert answer.status_code == 401
    assert "logout" in answer.json()["detail"]


def test_malformed_and_forged_tokens_are_refused(api: Api):
    real = api.login(ADMIN_EMAIL, api.admin_password)["Authorization"].removeprefix("Bearer ")
    forged = real[:-4] + ("AAAA" if not real.endswith("AAAA") else "BBBB")
    for token in ("", "garbage", "plt_short_x", forged, real + "x"):
        answer = api.client.get("/v1/me", headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, token
    assert api.client.get("/v1/me").status_code == 401


def test_a_changed_password_ends_the_other_sessions(api: Api):
    plan = api.plan()
    force = api.force(plan["id"])
    answer = api.client.post(
        f"/v1/forces/{force['id']}/members",
        json={"email": "o@x.test", "display_name": "O", "role": "officer"},
        headers=api.admin,
    )
    first_password = answer.json()["initial_password"]
    laptop = api.login("o@x.test", first_password)
    phone = api.login("o@x.test", first_password)
    changed = api.client.post(
        "/v1/me/password",
        json={"current_password": first_password, "new_password": "a much longer secret"},
        headers=laptop,
    )
    assert changed.status_code == 204
    assert api.client.get("/v1/me", headers=laptop).status_code == 200
    assert api.client.get("/v1/me", headers=phone).status_code == 401
    assert (
        api.client.post(
            "/v1/auth/token", json={"email": "o@x.test", "password": first_password}
        ).status_code
        == 401
    )


def test_a_disabled_account_cannot_use_its_token(api: Api):
    plan = api.plan()
    force = api.force(plan["id"])
    officer = api.member(force["id"], "officer")
    with api.engine.begin() as connection:
        connection.execute(text("UPDATE users SET disabled = true WHERE NOT is_platform_admin"))
    assert api.client.get("/v1/me", headers=officer).status_code == 401


def test_a_wrong_role_gets_403_naming_the_roles_that_may(api: Api):
    plan = api.plan()
    force = api.force(plan["id"])
    analyst = api.member(force["id"], "analyst")
    answer = api.client.post(f"/v1/forces/{force['id']}/drones", json={"id": "d"}, headers=analyst)
    assert answer.status_code == 403
    assert "analyst" in answer.json()["detail"]
    assert "force_admin" in answer.json()["detail"]


def test_sign_ins_and_failures_are_in_the_audit_log(api: Api):
    api.client.post("/v1/auth/token", json={"email": ADMIN_EMAIL, "password": "wrong"})
    events = api.client.get("/v1/audit", headers=api.admin).json()["items"]
    actions = [e["action"] for e in events]
    assert "auth.failed" in actions
    assert "auth.signed_in" in actions


def test_a_sign_in_flood_is_told_to_wait_per_address_and_per_account(api: Api):
    api.app.state.sign_ins = SignInThrottle(concurrent=2, per_minute=1)
    attempts = [
        api.client.post("/v1/auth/token", json={"email": f"x{i}@x.test", "password": "p"})
        for i in range(11)
    ]
    assert [a.status_code for a in attempts] == [401] * 10 + [429]
    assert int(attempts[-1].headers["retry-after"]) >= 1
    assert attempts[-1].headers["content-type"] == "application/problem+json"


def test_guessing_one_password_is_throttled_per_address_then_per_account():
    throttle = SignInThrottle(per_minute=2)
    for _ in range(2):
        throttle.attempt("a", "chief@x.test")
        throttle.failed("a", "chief@x.test")
    with pytest.raises(Problem) as refused:
        throttle.attempt("a", "chief@x.test")
    assert refused.value.status == 429
    throttle.attempt("a", "other@x.test")  # another account from there: not a guess at chief
    for address in range(18):  # twenty failures from everywhere together
        throttle.attempt(f"b{address}", "chief@x.test")
        throttle.failed(f"b{address}", "chief@x.test")
    with pytest.raises(Problem):
        throttle.attempt("fresh", "chief@x.test")


def test_a_stranger_cannot_lock_an_owner_out_by_failing_from_afar():
    throttle = SignInThrottle(per_minute=2)
    for _ in range(2):
        throttle.attempt("stranger", "chief@x.test")
        throttle.failed("stranger", "chief@x.test")
    throttle.attempt("owner", "chief@x.test")  # the owner, elsewhere, still gets in
    # Successes use nothing but their address's attempts.
    other = SignInThrottle(per_minute=2)
    for _ in range(20):
        other.attempt("desk", "chief@x.test")


def test_password_checks_beyond_the_concurrent_slots_are_refused_not_queued_for_ever():
    throttle = SignInThrottle(concurrent=1)
    with throttle.checking(), pytest.raises(Problem) as refused, throttle.checking():
        pass
    assert refused.value.status == 429
