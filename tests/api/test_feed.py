"""A force's live feed over real HTTP: its alerts and transitions as Server-Sent Events,
resumed after a drop with Last-Event-ID without a miss or a repeat, another force's never
shown."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx2
from cassandra.cluster import Session

from peaceland.stack import Endpoints
from peaceland.tenants.alerts import Alert, encode_alert
from tests.api.conftest import (
    Api,
    Provisioned,
    raise_alert,
    serving,
)
from tests.factories import make_alert
from tests.kafka_helpers import produce


@dataclass
class Event:
    id: str | None
    name: str
    data: dict[str, Any]


class Stream:
    """The events of one open feed, read as a browser's EventSource reads them."""

    def __init__(self, lines: Iterator[str]) -> None:
        self._lines = lines

    def next(self) -> Event:
        fields: dict[str, str] = {}
        for line in self._lines:
            if line == "":
                if "data" in fields:
                    return Event(fields.get("id"), fields.get("event", "message"),
                                 json.loads(fields["data"]))  # fmt: skip
                fields = {}
                continue
            if line.startswith(":"):
                continue  # a keep-alive comment
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")
        raise AssertionError("the feed ended")


def _alert(force: Provisioned, citizen: str) -> Alert:
    return make_alert(force.resources.force_id, citizen, datetime.now(UTC))


@contextmanager
def _feed(url: str, force_id: str, who: dict[str, str], **headers: str) -> Iterator[Stream]:
    since = (datetime.now(UTC) - timedelta(minutes=5)).isoformat()
    with (
        httpx2.Client(base_url=url, timeout=httpx2.Timeout(30, read=20)) as client,
        client.stream(
            "GET",
            f"/v1/forces/{force_id}/alerts/feed",
            params={"since": since},
            headers={**who, **headers},
        ) as answer,  # fmt: skip
    ):
        assert answer.status_code == 200, answer.read()
        assert answer.headers["content-type"].startswith("text/event-stream")
        yield Stream(answer.iter_lines())


def test_alerts_and_transitions_arrive_live_and_a_reconnection_misses_none(
    api: Api, forces: tuple[Provisioned, Provisioned], endpoints: Endpoints
):
    mine, theirs = forces
    force_id = mine.resources.force_id
    officer = api.member(force_id, "officer")
    first, second, third = (_alert(mine, f"Citizen {n}") for n in ("One", "Two", "Three"))
    produce(endpoints.kafka, mine.resources.alerts_topic, [(b"1", encode_alert(first))])
    produce(endpoints.kafka, theirs.resources.alerts_topic,
            [(b"x", encode_alert(_alert(theirs, "Their Citizen")))])  # fmt: skip
    with serving(api.app) as url:
        with _feed(url, force_id, officer) as stream:
            event = stream.next()
            assert (event.name, event.data["citizen"]) == ("alert", "Citizen One")
            last = event.id
            assert last
            produce(endpoints.kafka, mine.resources.alerts_topic, [(b"2", encode_alert(second))])
            event = stream.next()
            assert event.data["citizen"] == "Citizen Two"
            last = event.id
        # The page dropped; meanwhile a third alert. Resumed: the third, nothing before.
        produce(endpoints.kafka, mine.resources.alerts_topic, [(b"3", encode_alert(third))])
        assert last is not None
        with _feed(url, force_id, officer, **{"Last-Event-ID": last}) as stream:
            event = stream.next()
            assert event.data["citizen"] == "Citizen Three"
            assert event.id is not None
        with _feed(url, force_id, officer) as stream:
            seen = [stream.next().data["citizen"] for _ in range(3)]
        assert seen == ["Citizen One", "Citizen Two", "Citizen Three"]


def test_a_transition_reaches_every_open_page(
    api: Api, forces: tuple[Provisioned, Provisioned], cassandra: Session
):
    mine, _ = forces
    force_id = mine.resources.force_id
    alert_id = raise_alert(cassandra, mine)
    officer = api.member(force_id, "officer")
    with (
        serving(api.app) as url,
        _feed(url, force_id, officer) as one,
        _feed(url, force_id, officer) as two,
    ):
        answer = api.client.post(
            f"/v1/forces/{force_id}/alerts/{alert_id}/transitions",
            json={"action": "acknowledge"},
            headers=officer,
        )
        assert answer.status_code == 201
        for stream in (one, two):
            event = stream.next()
            assert event.name == "transition"
            assert (event.data["alert_id"], event.data["state"]) == (
                str(alert_id),
                "acknowledged",
            )


def test_another_forces_feed_is_refused_and_a_made_up_position_too(
    api: Api, forces: tuple[Provisioned, Provisioned]
):
    mine, theirs = forces
    officer = api.member(mine.resources.force_id, "officer")
    feed = f"/v1/forces/{theirs.resources.force_id}/alerts/feed"
    assert api.client.get(feed, headers=officer).status_code == 404
    own = f"/v1/forces/{mine.resources.force_id}/alerts/feed"
    refused = api.client.get(own, headers={**officer, "Last-Event-ID": "x1=2"})
    assert refused.status_code == 400
    assert refused.json()["errors"][0]["field"] == "header.Last-Event-ID"
