"""Where a force's drones are: each drone's last position, read from the force's own reports
topic as the force's own Kafka principal, served to its officers and analysts and sent live
to its dashboards; another force's drones never shown, a record that is no report skipped."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from fastapi.testclient import TestClient

from peaceland.api.app import create_app
from peaceland.stack import Endpoints
from tests.api.conftest import Api, Provisioned, serving
from tests.api.test_feed import Stream
from tests.factories import report_of
from tests.kafka_helpers import produce_timed


def _positions(client: TestClient | httpx2.Client, force_id: str, who: dict[str, str]) -> Any:
    answer = client.get(f"/v1/forces/{force_id}/positions", headers=who)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_each_drones_last_position_is_served_an_old_report_and_a_broken_record_are_not(
    api: Api, forces: tuple[Provisioned, Provisioned], endpoints: Endpoints
):
    mine, _ = forces
    force_id = mine.resources.force_id
    an_hour_ago = int((datetime.now(UTC) - timedelta(hours=1)).timestamp() * 1000)
    produce_timed(
        endpoints.kafka,
        mine.resources.reports_topic,
        [
            ("d-gone", report_of("d-gone", 10.0, 10.0), an_hour_ago),  # before the lookback
            ("d-1", report_of("d-1", 48.1, 2.1), 0),
            ("d-1", b"{not a report", 0),
            ("d-1", report_of("d-1", 48.2, 2.2), 0),
            ("d-2", report_of("d-2", 48.3, 2.3), 0),
        ],
    )
    analyst = api.member(force_id, "analyst")
    found = _positions(api.client, force_id, analyst)
    assert found["complete"] is True
    where = {d["drone_id"]: (d["latitude"], d["longitude"]) for d in found["drones"]}
    assert where == {"d-1": (48.2, 2.2), "d-2": (48.3, 2.3)}
    assert found["lookback_seconds"] == api.settings.drones_lookback_seconds
    # Later reports move the drone; the reader, still running, has them.
    produce_timed(
        endpoints.kafka, mine.resources.reports_topic, [("d-1", report_of("d-1", 48.4, 2.4), 0)]
    )
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        found = _positions(api.client, force_id, analyst)
        if {d["drone_id"]: d["latitude"] for d in found["drones"]}["d-1"] == 48.4:
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"d-1 never moved: {found}")
    assert found["drones"][0]["drone_id"] == "d-1"  # newest first


def test_another_forces_drones_are_never_shown(
    api: Api, forces: tuple[Provisioned, Provisioned], endpoints: Endpoints
):
    mine, theirs = forces
    produce_timed(
        endpoints.kafka, mine.resources.reports_topic, [("d-mine", report_of("d-mine", 1, 1), 0)]
    )
    produce_timed(
        endpoints.kafka,
        theirs.resources.reports_topic,
        [("d-theirs", report_of("d-theirs", 2, 2), 0)],
    )
    their_officer = api.member(theirs.resources.force_id, "officer")
    refused = api.client.get(
        f"/v1/forces/{mine.resources.force_id}/positions", headers=their_officer
    )
    assert refused.status_code == 404, refused.text
    seen = _positions(api.client, theirs.resources.force_id, their_officer)
    assert [d["drone_id"] for d in seen["drones"]] == ["d-theirs"]
    # Police data is the force's own: not its force admin, not the platform's admins.
    positions = f"/v1/forces/{mine.resources.force_id}/positions"
    force_admin = api.member(mine.resources.force_id, "force_admin")
    assert api.client.get(positions, headers=force_admin).status_code == 403
    assert api.client.get(positions, headers=api.admin).status_code == 404


def test_the_feed_sends_every_drone_once_then_only_the_drones_that_moved(
    api: Api, forces: tuple[Provisioned, Provisioned], endpoints: Endpoints
):
    mine, _ = forces
    force_id = mine.resources.force_id
    topic = mine.resources.reports_topic
    produce_timed(endpoints.kafka, topic, [(d, report_of(d, 48.0 + n / 10, 2.0), 0)
                             for n, d in enumerate(("d-1", "d-2", "d-3"))])  # fmt: skip
    officer = api.member(force_id, "officer")
    with (
        serving(api.app) as url,
        httpx2.Client(base_url=url, timeout=httpx2.Timeout(30, read=20)) as client,
        client.stream(
            "GET",
            f"/v1/forces/{force_id}/alerts/feed",
            params={"drones": "true"},
            headers=officer,
        ) as answer,  # fmt: skip
    ):
        assert answer.status_code == 200
        stream = Stream(answer.iter_lines())
        seen: dict[str, float] = {}
        while len(seen) < 3:
            event = stream.next()
            assert event.name == "drones"
            assert event.id is None  # never a position to resume from
            seen |= {d["drone_id"]: d["latitude"] for d in event.data["drones"]}
        assert seen == {"d-1": 48.0, "d-2": 48.1, "d-3": 48.2}
        produce_timed(endpoints.kafka, topic, [("d-2", report_of("d-2", 47.5, 2.0), 0)])
        event = stream.next()
        assert event.name == "drones"
        assert [(d["drone_id"], d["latitude"]) for d in event.data["drones"]] == [("d-2", 47.5)]


def test_a_feed_that_does_not_ask_for_drones_starts_no_reader(
    api: Api, forces: tuple[Provisioned, Provisioned], endpoints: Endpoints
):
    mine, _ = forces
    force_id = mine.resources.force_id
    produce_timed(
        endpoints.kafka, mine.resources.reports_topic, [("d-1", report_of("d-1", 48, 2), 0)]
    )
    officer = api.member(force_id, "officer")
    with (
        serving(api.app) as url,
        httpx2.Client(base_url=url, timeout=10) as client,
        client.stream("GET", f"/v1/forces/{force_id}/alerts/feed", headers=officer) as answer,
    ):
        assert answer.status_code == 200
        time.sleep(2.5)  # more than two drones ticks, were there any
        assert api.app.state.drones.running() == []


def test_a_forces_reader_stops_once_nobody_uses_it(
    api: Api, forces: tuple[Provisioned, Provisioned]
):
    mine, _ = forces
    force_id = mine.resources.force_id
    settings = api.settings.model_copy(update={"drones_linger_seconds": 0.5})
    with TestClient(create_app(settings, engine=api.engine)) as client:
        analyst = api.member(force_id, "analyst")
        _positions(client, force_id, analyst)
        drones = client.app.state.drones  # type: ignore[attr-defined]
        assert drones.running() == [force_id]
        deadline = time.monotonic() + 10
        while drones.running() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert drones.running() == []
        # Asked again: a reader again, from the lookback.
        assert _positions(client, force_id, analyst)["complete"] is True
        assert drones.running() == [force_id]


def test_a_page_that_leaves_its_feed_lets_its_forces_reader_stop(
    api: Api, forces: tuple[Provisioned, Provisioned]
):
    mine, _ = forces
    force_id = mine.resources.force_id
    officer = api.member(force_id, "officer")
    settings = api.settings.model_copy(update={"drones_linger_seconds": 0.5})
    app = create_app(settings, engine=api.engine)
    with serving(app) as url, httpx2.Client(base_url=url, timeout=10) as client:
        with client.stream(
            "GET", f"/v1/forces/{force_id}/alerts/feed", params={"drones": "true"},
            headers=officer,
        ) as answer:  # fmt: skip
            assert answer.status_code == 200
            assert Stream(answer.iter_lines()).next().name == "drones"
            [watch] = app.state.drones._watches.values()
            assert app.state.drones.running() == [force_id]
        # The page went; the server goes on: its reader stops after the linger.
        deadline = time.monotonic() + 10
        while watch._thread.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not watch._thread.is_alive()
        assert app.state.drones.running() == []
