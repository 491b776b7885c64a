"""Requests racing on the real PostgreSQL: a key issued while its drone is retired or its force
deleted, two registrations of one drone. The interleaving is forced by holding, from another
connection, the lock the first request will wait on."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import Any

import httpx2
import psycopg
import pytest

from peaceland.api import keys
from peaceland.tenants.drone_keys import KeyChanges
from tests.api.conftest import Api, serving


def _feed(api: Api) -> KeyChanges:
    answer = api.client.get("/v1/internal/drone-keys", headers=api.gateway)
    return KeyChanges.model_validate(answer.json())


class _Call(threading.Thread):
    def __init__(self, call: Callable[[], httpx2.Response]) -> None:
        super().__init__()
        self._call = call
        self.answer: httpx2.Response | None = None

    def run(self) -> None:
        self.answer = self._call()


@contextmanager
def _held(api: Api, lock_sql: str, *args: Any) -> Any:
    """A lock held by another connection until the block ends."""
    with psycopg.connect(api.settings.database_url.replace("+psycopg", "")) as other:
        other.execute(lock_sql, args)
        yield
        other.commit()


@pytest.fixture
def force_with_drone(api: Api) -> tuple[str, dict[str, str]]:
    force_id = api.force(api.plan()["id"])["id"]
    boss = api.member(force_id, "force_admin")
    answer = api.client.post(f"/v1/forces/{force_id}/drones", json={"id": "d-1"}, headers=boss)
    assert answer.status_code == 201
    return force_id, boss


def _post(url: str, headers: dict[str, str], json: Any = None) -> Callable[[], httpx2.Response]:
    return lambda: httpx2.post(url, headers=headers, json=json, timeout=60)


def _delete(url: str, headers: dict[str, str]) -> Callable[[], httpx2.Response]:
    return lambda: httpx2.delete(url, headers=headers, timeout=60)


def test_a_key_issued_while_its_force_is_deleted_is_revoked_with_it(
    api: Api, force_with_drone: tuple[str, dict[str, str]]
):
    force_id, boss = force_with_drone
    with serving(api.app) as url:
        with _held(api, "SELECT pg_advisory_xact_lock(%s)", keys._KEY_LOCK):
            issue = _Call(_post(f"{url}/v1/forces/{force_id}/drones/d-1/keys", boss))
            issue.start()
            time.sleep(1)  # the issue holds the drone's row, waits for the key lock
            deletion = _Call(_delete(f"{url}/v1/forces/{force_id}", api.admin))
            deletion.start()
            time.sleep(1)
        issue.join()
        deletion.join()
    assert issue.answer is not None
    assert deletion.answer is not None
    assert deletion.answer.status_code == 202
    granted = {g.key_id for g in _feed(api).grants}
    if issue.answer.status_code == 201:
        assert issue.answer.json()["key_id"] not in granted
    assert not granted


def test_a_key_asked_for_while_its_drone_is_retired_is_refused_or_revoked(
    api: Api, force_with_drone: tuple[str, dict[str, str]]
):
    force_id, boss = force_with_drone
    drone = f"/v1/forces/{force_id}/drones/d-1"
    api.client.post(f"{drone}/keys", headers=boss)
    with serving(api.app) as url:
        with _held(api, "SELECT pg_advisory_xact_lock(%s)", keys._KEY_LOCK):
            retire = _Call(_delete(f"{url}{drone}", boss))
            retire.start()
            time.sleep(1)  # the retirement holds the drone's row, waits for the key lock
            issue = _Call(_post(f"{url}{drone}/keys", boss))
            issue.start()
            time.sleep(1)
        retire.join()
        issue.join()
    assert retire.answer is not None
    assert issue.answer is not None
    assert retire.answer.status_code == 204
    assert issue.answer.status_code == 409, issue.answer.text
    assert _feed(api).grants == []


def test_two_registrations_of_one_drone_make_one_and_a_conflict(
    api: Api, force_with_drone: tuple[str, dict[str, str]]
):
    force_id, boss = force_with_drone
    with serving(api.app) as url:
        with _held(api, "SELECT pg_advisory_xact_lock(hashtext(%s))", f"drones/{force_id}"):
            calls = [
                _Call(_post(f"{url}/v1/forces/{force_id}/drones", boss, {"id": "twin"}))
                for _ in range(2)
            ]
            for call in calls:
                call.start()
            time.sleep(1.5)
        for call in calls:
            call.join()
    codes = sorted(c.answer.status_code for c in calls if c.answer is not None)
    assert codes == [201, 409]
