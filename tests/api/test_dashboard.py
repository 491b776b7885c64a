"""The live alert dashboard in a real browser (Debian's Chromium, driven by Playwright):
an officer signs in, an alert raised appears on the map and in the list, acknowledging it
is recorded and reaches a second open page live, a page reloaded misses no alert, another
force's officer sees none of it, and a dropped feed is said and comes back by itself."""

from __future__ import annotations

import os
import random
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cassandra.cluster import Session
from playwright.sync_api import Browser, Page, expect, sync_playwright
from sqlalchemy import text

from peaceland.api.app import create_app
from peaceland.services.alerter.book import AlertBook, Sighting
from peaceland.stack import Endpoints, Stack
from peaceland.stack.fetch import CHROMIUM_ARGS, chromium
from peaceland.stack.processes import free_port
from peaceland.tenants.alerts import encode_alert
from peaceland.tenants.lifecycle import Transition, encode_transition
from peaceland.tenants.reports import Citizen
from tests.api.conftest import Api, Provisioned, serving
from tests.factories import make_alert, make_report, report_of
from tests.kafka_helpers import produce, produce_timed

#: The screenshot in docs/ and the README, written when this is set to its path.
SCREENSHOT = os.environ.get("PEACELAND_DASHBOARD_SCREENSHOT")


@pytest.fixture(scope="module")
def browser(stack: Stack) -> Iterator[Browser]:
    executable = chromium(lambda message: print(f"[stack] {message}"))  # noqa: T201
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(executable), args=list(CHROMIUM_ARGS)
        )
        yield browser
        browser.close()


def _raise(
    cassandra: Session, endpoints: Endpoints, force: Provisioned, citizen: str, *, at_east: float
) -> str:
    """What the alerter does with a low score: the alert in the force's keyspace, its
    ``raised`` event on the alerts topic."""
    seen = Citizen(name=citizen, score=3.0)
    now = datetime.now(UTC).replace(microsecond=0)
    report = make_report(random.Random(), citizens=0).model_copy(
        update={
            "timestamp": now,
            "citizens": [seen],
            "drone_id": "drone-007",
            "latitude": 48.8566,
            "longitude": at_east,
        }
    )
    book = AlertBook(cassandra, force.resources.keyspace, force.resources.force_id)
    decision = book.decide(Sighting(report, seen, f"0/{uuid.uuid4().int % 10**9}", now), 600)
    alert = make_alert(
        force.resources.force_id,
        citizen,
        now,
        report_id=report.report_id,
        latitude=report.latitude,
        longitude=report.longitude,
        drone_id=report.drone_id,
        score=seen.score,
    )
    assert alert.alert_id == decision.alert_id
    produce(endpoints.kafka, force.resources.alerts_topic, [(b"k", encode_alert(alert))])
    return str(decision.alert_id)


def _until(page: Page, function: str, timeout: float = 15) -> None:
    """Poll ``function`` in the page until it is true. Not ``wait_for_function``: it
    evaluates strings in the page, which the page's CSP (tested as served) forbids."""
    deadline = time.monotonic() + timeout
    while not page.evaluate(function):
        assert time.monotonic() < deadline, f"never true: {function}"
        time.sleep(0.1)


def _signed_in(browser: Browser, url: str, email: str, password: str) -> Page:
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    page.goto(f"{url}/dashboard/")
    page.fill("#email", email)
    page.fill("#password", password)
    page.click("button[type=submit]")
    expect(page.locator("#live")).to_have_text("● live", timeout=20_000)
    return page


def _person(api: Api, force_id: str, role: str) -> tuple[str, str]:
    email = f"{role}-{uuid.uuid4().hex[:6]}@{force_id}.test"
    answer = api.client.post(
        f"/v1/forces/{force_id}/members",
        json={"email": email, "display_name": role.title(), "role": role},
        headers=api.admin,
    )
    assert answer.status_code == 201, answer.text
    return email, answer.json()["initial_password"]


def test_an_officer_sees_alerts_live_acts_on_them_and_sees_nothing_of_another_force(
    api: Api,
    forces: tuple[Provisioned, Provisioned],
    browser: Browser,
    cassandra: Session,
    endpoints: Endpoints,
    tmp_path: Path,
):
    mine, theirs = forces
    force_id = mine.resources.force_id
    first, second = _person(api, force_id, "officer"), _person(api, force_id, "officer")
    outsider = _person(api, theirs.resources.force_id, "officer")
    served = api.client.get("/dashboard/")
    assert "frame-ancestors 'none'" in served.headers["content-security-policy"]
    assert served.headers["x-content-type-options"] == "nosniff"
    port = free_port()
    control_plane = serving(api.app, port)
    url = control_plane.__enter__()
    try:
        page = _signed_in(browser, url, *first)
        other = _signed_in(browser, url, *second)
        theirs_page = _signed_in(browser, url, *outsider)

        alert_id = _raise(cassandra, endpoints, mine, "Wanted Person", at_east=2.3522)
        row = page.locator(f"#alert-{alert_id}")
        expect(row).to_contain_text("Wanted Person", timeout=15_000)
        expect(other.locator(f"#alert-{alert_id}")).to_contain_text("open")
        expect(page.locator("#open-count")).to_have_text("1")
        # On the map too: the page records when it drew each alert in both.
        _until(page, f"() => window.peaceland.drawn['{alert_id}'] !== undefined")
        assert page.evaluate(f"() => window.peaceland.onMap['{alert_id}']")
        # The drones' last positions on the map, live, under the alerts.
        produce_timed(endpoints.kafka, mine.resources.reports_topic,
              [(d, report_of(d, 48.85 + n / 100, 2.35), 0)
               for n, d in enumerate(("drone-1", "drone-2", "drone-3"))])  # fmt: skip
        expect(page.locator("#drone-count")).to_have_text("3", timeout=15_000)
        _until(other, "() => window.peaceland.drones === 3")

        # Acknowledged on one page: recorded (who, when), and live on the other.
        row.locator("button[data-action=acknowledge]").click()
        expect(other.locator(f"#alert-{alert_id}")).to_contain_text(
            f"acknowledged by {first[0]}", timeout=15_000
        )
        expect(page.locator("#acked-count")).to_have_text("1")
        with api.engine.connect() as connection:
            audited = connection.execute(
                text("SELECT actor, at FROM audit_events WHERE action = 'alert.acknowledge' "
                     "AND target = :t"),
                {"t": f"alert/{alert_id}"},
            ).all()  # fmt: skip
        assert [a.actor for a in audited] == [first[0]]

        # A page reloaded while an alert is raised misses none (still signed in: the
        # token is the tab's).
        page.reload()
        later = _raise(cassandra, endpoints, mine, "Second Person", at_east=2.36)
        expect(page.locator(f"#alert-{later}")).to_contain_text("Second Person", timeout=15_000)
        expect(page.locator(f"#alert-{alert_id}")).to_contain_text("acknowledged")

        # The feed drops (the control plane goes away): the page says so, and an alert is
        # raised meanwhile.
        control_plane.__exit__(None, None, None)
        expect(other.locator("#feed-state")).to_contain_text("Live feed lost", timeout=15_000)
        events = other.evaluate("() => window.peaceland.events")
        third = _raise(cassandra, endpoints, mine, "Third Person", at_east=2.34)
        # It comes back (a new process, as after a restart): the page reconnects by itself
        # and misses nothing.
        control_plane = serving(create_app(api.settings, engine=api.engine), port)
        control_plane.__enter__()
        expect(other.locator("#live")).to_have_text("● live", timeout=30_000)
        expect(other.locator(f"#alert-{third}")).to_contain_text("Third Person", timeout=15_000)
        expect(other.locator("#feed-state")).to_be_hidden()
        expect(other.locator("#alerts li")).to_have_count(3)
        # Resumed from its last event (Last-Event-ID), not replayed from the start.
        assert other.evaluate("() => window.peaceland.events") == events + 1

        # Resolved: off the map, on every page.
        page.locator(f"#alert-{alert_id} button[data-action=resolve]").click()
        expect(other.locator(f"#alert-{alert_id}")).to_contain_text("resolved", timeout=15_000)
        _until(other, f"() => !window.peaceland.onMap['{alert_id}']")

        # Another force's officer saw none of it, and cannot ask for it.
        expect(theirs_page.locator("#live")).to_have_text("● live", timeout=30_000)
        assert theirs_page.locator("#alerts li").count() == 0
        assert theirs_page.evaluate("() => Object.keys(window.peaceland.drawn).length") == 0
        assert theirs_page.evaluate("() => window.peaceland.events") == 0
        assert theirs_page.evaluate("() => window.peaceland.drones") == 0
        asked = theirs_page.evaluate(
            """async (force) => (await fetch(`/v1/forces/${force}/alerts`, {headers:
                {Authorization: `Bearer ${sessionStorage.getItem('peaceland.token')}`}})).status""",
            force_id,
        )
        assert asked == 404
        theirs_page.goto(f"{url}/dashboard/?force={force_id}")
        expect(theirs_page.locator("#who")).to_contain_text(theirs.resources.force_id)

        shot = Path(SCREENSHOT) if SCREENSHOT else tmp_path / "dashboard.png"
        expect(page.locator("#alerts li")).to_have_count(3, timeout=15_000)
        page.screenshot(path=str(shot))
        assert shot.stat().st_size > 10_000
    finally:
        control_plane.__exit__(None, None, None)


def test_a_long_history_lists_the_newest_alerts_to_act_on_and_shows_older_ones_on_demand(
    api: Api, forces: tuple[Provisioned, Provisioned], browser: Browser, endpoints: Endpoints
):
    mine, _ = forces
    force_id = mine.resources.force_id
    officer = _person(api, force_id, "officer")
    now = datetime.now(UTC)
    # 305 alerts raised over the last hour, the oldest first on the topic.
    alerts = [
        make_alert(force_id, f"Citizen {n:03d}", now - timedelta(seconds=10 * (305 - n)))
        for n in range(305)
    ]
    produce(endpoints.kafka, mine.resources.alerts_topic,
            [(a.citizen.encode(), encode_alert(a)) for a in alerts])  # fmt: skip
    with serving(api.app) as url:
        page = _signed_in(browser, url, *officer)
        _until(page, "() => Object.keys(window.peaceland.drawn).length === 305", timeout=30)
        rows = page.locator("#alerts li")
        expect(rows).to_have_count(300)
        # Newest first: the five oldest are the ones not listed.
        expect(rows.first).to_contain_text("Citizen 304")
        expect(rows.last).to_contain_text("Citizen 005")
        expect(page.locator("#older-count")).to_contain_text("5 older alerts still to act on")
        # A resolved alert never pushes out one still to act on: the newest resolved (as
        # another page would), the next oldest one still to act on is listed in its stead.
        resolved = Transition(
            force_id=force_id, alert_id=alerts[304].alert_id, seq=1, action="resolve",
            state="resolved", actor=officer[0], at=datetime.now(UTC),
        )  # fmt: skip
        produce(endpoints.kafka, mine.resources.lifecycle_topic,
                [(b"t", encode_transition(resolved))])  # fmt: skip
        expect(page.locator(f"#alert-{alerts[304].alert_id}")).to_have_count(0, timeout=15_000)
        expect(page.locator(f"#alert-{alerts[4].alert_id}")).to_contain_text("Citizen 004")
        expect(page.locator("#older-count")).to_contain_text("4 older alerts")
        page.locator("#show-older").click()
        expect(rows).to_have_count(305)  # every alert: room for the resolved one too
        expect(page.locator("#show-older")).to_be_hidden()
