"""A force's alerts through the control plane: listed, read, acknowledged, assigned,
resolved and noted by its officers, each transition once on the lifecycle topic, timed; as
the force's own identities, never another force's."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cassandra import Unauthorized
from cassandra.cluster import Session
from sqlalchemy import text

from peaceland.api.alert_desk import AlertDesk, LifecyclePublisher
from peaceland.api.force_data import ForceData
from peaceland.stack import Endpoints
from peaceland.tenants.lifecycle import decode_transition
from tests.api.conftest import (
    WANTED,
    Api,
    Provisioned,
    raise_alert,
)
from tests.kafka_helpers import read_all


def _post(api: Api, force_id: str, alert_id: uuid.UUID, who: dict[str, str], **body: Any):
    return api.client.post(
        f"/v1/forces/{force_id}/alerts/{alert_id}/transitions", json=body, headers=who
    )


def test_an_alert_is_acknowledged_once_then_resolved_and_timed(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session, endpoints: Endpoints
):
    force, _ = forces
    force_id = force.resources.force_id
    alert_id = raise_alert(cassandra, force)
    first, second = api.member(force_id, "officer"), api.member(force_id, "officer")
    alerts = f"/v1/forces/{force_id}/alerts"

    listed = api.client.get(alerts, headers=first).json()["items"]
    assert [(a["alert_id"], a["state"], a["citizen"]) for a in listed] == [
        (str(alert_id), "open", WANTED.name)
    ]
    assert listed[0]["last_drone_id"] == "d-8"

    acked = _post(api, force_id, alert_id, first, action="acknowledge")
    assert acked.status_code == 201, acked.text
    assert (acked.json()["seq"], acked.json()["state"]) == (1, "acknowledged")
    me = api.client.get("/v1/me", headers=first).json()["email"]
    late = _post(api, force_id, alert_id, second, action="acknowledge")
    assert late.status_code == 409
    assert f"by {me}" in late.json()["detail"]

    noted = _post(api, force_id, alert_id, second, action="note", note="on my way")
    assert noted.status_code == 201
    resolved = _post(api, force_id, alert_id, second, action="resolve")
    assert resolved.status_code == 201
    again = _post(api, force_id, alert_id, first, action="resolve")
    assert again.status_code == 409
    assert "already resolved" in again.json()["detail"]

    detail = api.client.get(f"{alerts}/{alert_id}", headers=first).json()
    assert [(t["seq"], t["action"], t["state"]) for t in detail["transitions"]] == [
        (1, "acknowledge", "acknowledged"),
        (2, "note", "acknowledged"),
        (3, "resolve", "resolved"),
    ]
    assert detail["acknowledged_by"] == me
    assert detail["reaction_seconds"] > 0
    assert detail["resolution_seconds"] >= detail["reaction_seconds"]
    assert [s["drone_id"] for s in detail["sightings"]] == ["d-7", "d-8"]
    listed = api.client.get(alerts, headers=first).json()["items"]
    assert (listed[0]["state"], listed[0]["acknowledged_by"]) == ("resolved", me)
    figures = api.client.get(f"{alerts}/reaction", headers=first).json()
    assert (figures["raised"], figures["resolved"], figures["open"]) == (1, 1, 0)
    assert figures["acknowledged_p50_seconds"] == detail["reaction_seconds"]

    # Each change in the audit log: who, when, what.
    with api.engine.connect() as connection:
        actions = connection.execute(
            text("SELECT actor, action FROM audit_events WHERE target = :t ORDER BY id"),
            {"t": f"alert/{alert_id}"},
        ).all()
    assert [tuple(a) for a in actions if a[1] != "alert.read"] == [
        (me, "alert.acknowledge"),
        (actions[1][0], "alert.note"),
        (actions[1][0], "alert.resolve"),
    ]
    # Each transition once on the force's lifecycle topic, in order.
    records = read_all(endpoints.kafka, force.resources.lifecycle_topic)
    published = [decode_transition(r.value() or b"") for r in records]
    assert [(t.seq, t.action) for t in published] == [(1, "acknowledge"), (2, "note"),
                                                      (3, "resolve")]  # fmt: skip
    assert {t.alert_id for t in published} == {alert_id}


def test_officers_acknowledging_at_once_make_one_acknowledgement(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    force, _ = forces
    force_id = force.resources.force_id
    alert_id = raise_alert(cassandra, force)
    officers = [api.member(force_id, "officer") for _ in range(6)]
    answers: list[int] = []
    start = threading.Barrier(len(officers))

    def acknowledge(who: dict[str, str]) -> None:
        start.wait()
        answers.append(_post(api, force_id, alert_id, who, action="acknowledge").status_code)

    threads = [threading.Thread(target=acknowledge, args=(o,)) for o in officers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(answers) == [201] + [409] * 5
    detail = api.client.get(f"/v1/forces/{force_id}/alerts/{alert_id}", headers=officers[0])
    assert [t["seq"] for t in detail.json()["transitions"]] == [1]


def test_a_request_sent_again_with_its_key_gets_its_transition_not_a_second(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    force, _ = forces
    force_id = force.resources.force_id
    alert_id = raise_alert(cassandra, force)
    officer = api.member(force_id, "officer")
    keyed = {**officer, "Idempotency-Key": "note-1"}
    first = _post(api, force_id, alert_id, keyed, action="note", note="seen")
    again = _post(api, force_id, alert_id, keyed, action="note", note="seen")
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json() == again.json()
    other = _post(api, force_id, alert_id, keyed, action="note", note="something else")
    assert other.status_code == 422
    assert other.json()["errors"][0]["field"] == "header.Idempotency-Key"


def test_a_transition_a_crash_kept_off_the_topic_is_published_once_later(
    api: Api,
    forces: tuple[Provisioned, Provisioned],
    cassandra: Session,
    endpoints: Endpoints,
    monkeypatch: pytest.MonkeyPatch,
):
    force, _ = forces
    force_id = force.resources.force_id
    alert_id = raise_alert(cassandra, force)
    officer = api.member(force_id, "officer")
    # Kafka unreachable for the request: the transition is made, its publication waits.
    monkeypatch.setattr(AlertDesk, "_publish", lambda *_: False)
    assert _post(api, force_id, alert_id, officer, action="acknowledge").status_code == 201
    assert read_all(endpoints.kafka, force.resources.lifecycle_topic) == []
    monkeypatch.undo()
    # The control plane's publisher (as its lifespan runs it) finishes it, once.
    publisher = LifecyclePublisher(
        api.app.state.forces, api.app.state.desks, interval=60, older_than=timedelta(0)
    )
    assert publisher.publish_all() == 1
    assert publisher.publish_all() == 0
    records = read_all(endpoints.kafka, force.resources.lifecycle_topic)
    assert [decode_transition(r.value() or b"").seq for r in records] == [1]


def test_roles_and_forces_decide_who_reads_and_who_acts(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    mine, theirs = forces
    alert_id = raise_alert(cassandra, mine)
    their_alert = raise_alert(cassandra, theirs)
    force_id = mine.resources.force_id
    analyst = api.member(force_id, "analyst")
    admin = api.member(force_id, "force_admin")
    officer = api.member(force_id, "officer")
    alerts = f"/v1/forces/{force_id}/alerts"
    assert api.client.get(alerts, headers=analyst).status_code == 200
    assert _post(api, force_id, alert_id, analyst, action="acknowledge").status_code == 403
    assert api.client.get(alerts, headers=admin).status_code == 403
    # Police data is the force's own: not even the platform's admins read it.
    assert api.client.get(alerts, headers=api.admin).status_code == 404
    # Another force's alert, asked for under one's own force: not there.
    assert api.client.get(f"{alerts}/{their_alert}", headers=officer).status_code == 404
    assert _post(api, force_id, their_alert, officer, action="resolve").status_code == 404
    # An assignee must be an officer or force admin of the force.
    outsider = api.client.get("/v1/me", headers=api.member(theirs.resources.force_id,
                                                            "officer")).json()["email"]  # fmt: skip
    refused = _post(api, force_id, alert_id, officer, action="assign", assignee=outsider)
    assert refused.status_code == 422
    boss = api.client.get("/v1/me", headers=admin).json()["email"]
    assigned = _post(api, force_id, alert_id, officer, action="assign", assignee=boss)
    assert assigned.status_code == 201
    assert assigned.json()["assignee"] == boss


def test_the_servers_refuse_one_forces_identities_the_others_alerts(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    mine, theirs = forces
    raise_alert(cassandra, theirs)
    servers = api.settings.data_servers()
    assert servers is not None
    data = ForceData(*servers, api.app.state.forces.secret_data)
    try:
        session = data.session(mine.resources.force_id)
        session.execute(f"SELECT * FROM {mine.resources.keyspace}.alerts_by_day LIMIT 1")
        with pytest.raises(Unauthorized):
            session.execute(f"SELECT * FROM {theirs.resources.keyspace}.alerts_by_day LIMIT 1")
    finally:
        data.close()


def _alert_row(
    cassandra: Session, force: Provisioned, citizen: str, opened: datetime, where: float
) -> str:
    """An alert as the alerter writes it in ``alerts_by_day``, last seen at ``where`` (east)."""
    alert_id = uuid.uuid4()
    cassandra.execute(
        f"INSERT INTO {force.resources.keyspace}.alerts_by_day (day, alert_id, citizen, score, "
        "drone_id, report_id, latitude, longitude, opened_at, raised_at, last_latitude, "
        "last_longitude) VALUES (%s, %s, %s, 1.0, 'd-1', %s, 48.85, 2.0, %s, %s, 48.85, %s)",
        (opened.date(), alert_id, citizen, uuid.uuid4(), opened, opened, where),
    )
    return str(alert_id)


def test_a_list_filters_by_state_citizen_and_area_and_pages_newest_first_missing_none(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    force, _ = forces
    force_id = force.resources.force_id
    now = datetime.now(UTC).replace(microsecond=0)
    # Seven alerts over two days, newest first; the third and fifth acknowledged.
    made = [
        _alert_row(cassandra, force, "Ann" if n % 2 else "Bob", now - timedelta(hours=5 * n),
                   where=2.0 + n / 10)
        for n in range(7)
    ]  # fmt: skip
    for n in (2, 4):
        cassandra.execute(
            f"INSERT INTO {force.resources.keyspace}.alert_states_by_day (day, alert_id, state) "
            "VALUES (%s, %s, 'acknowledged')",
            ((now - timedelta(hours=5 * n)).date(), uuid.UUID(made[n])),
        )
    analyst = api.member(force_id, "analyst")
    since = (now - timedelta(days=3)).isoformat()

    def listed(**params: Any) -> list[str]:
        ids, cursor = [], None
        while True:
            query = {"since": since, "limit": 3, **params} | ({"cursor": cursor} if cursor else {})
            page = api.client.get(f"/v1/forces/{force_id}/alerts", params=query, headers=analyst)
            assert page.status_code == 200, page.text
            ids += [a["alert_id"] for a in page.json()["items"]]
            cursor = page.json()["next_cursor"]
            if cursor is None:
                return ids

    assert listed() == made  # three pages, newest first, none missed or repeated
    assert listed(state="acknowledged") == [made[2], made[4]]
    assert listed(state="open") == [made[n] for n in (0, 1, 3, 5, 6)]
    assert listed(citizen="Ann") == [made[n] for n in (1, 3, 5)]
    assert listed(bbox="1.9,48,2.25,49") == made[:3]  # last seen east of 2.25: out
