"""The dashboard's statistics panel in a real browser: an officer opens it and reads their
force's figures from the lake (the same the API gives), never another force's."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

from playwright.sync_api import Browser, Page, expect

from peaceland.analytics.lake import (
    LakeWriter,
    LocalStorage,
    alert_rows,
    rows_of_reports,
    transition_rows,
)
from peaceland.tenants.alerts import Alert
from tests.analytics.test_stats import _transition
from tests.api.conftest import Api, serving
from tests.api.test_dashboard import _person, browser  # noqa: F401 - the module's browser
from tests.factories import make_alert, make_report


def _fill(root: Path, force_id: str, seed: int, drone_prefix: str) -> list[Alert]:
    """Reports of the last three hours, an alert for one in three (its drone's), officers
    acknowledging every other alert ten minutes after it was raised: the alerts, written
    as the lake consumer would write them."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    made = [
        make_report(rng, at=now - timedelta(minutes=2 * i + 15), citizens=2).model_copy(
            update={"drone_id": f"{drone_prefix}-{i % 4}"}
        )
        for i in range(90)
    ]
    writer = LakeWriter(LocalStorage(root), force_id)
    writer.resume("reports", 0)
    writer.write("reports", 0, len(made) - 1, rows_of_reports(made))
    alerts = [
        make_alert(
            force_id, r.citizens[0].name, r.timestamp, report_id=r.report_id, drone_id=r.drone_id
        )
        for r in made[::3]
    ]
    rows = [x for a in alerts for x in alert_rows(a)["alerts"]]
    writer.resume("alerts", 0)
    writer.write("alerts", 0, len(alerts) - 1, {"alerts": rows})
    acted = [
        _transition(a, 1, "acknowledge", a.raised_at + timedelta(minutes=10)) for a in alerts[::2]
    ]
    writer.resume("lifecycle", 0)
    writer.write(
        "lifecycle",
        0,
        len(acted) - 1,
        {"lifecycle": [x for t in acted for x in transition_rows(t)["lifecycle"]]},
    )
    return alerts


def _hour(alert: Alert) -> str:
    """The hour an alert was raised in, as the API says an hour."""
    return alert.raised_at.astimezone(UTC).strftime("%Y-%m-%dT%H:00:00Z")


def _keyed(page: Page, table: str, column: int = 1) -> dict[str, str]:
    """A table of the panel: each row's key (``data-key``) and the text of one column."""
    return {
        str(row.get_attribute("data-key")): row.locator("td").nth(column).inner_text()
        for row in page.locator(f"#{table} tr[data-key]").all()
    }


def test_an_officer_reads_the_forces_statistics_on_the_dashboard_and_no_other_forces(
    api: Api,
    browser: Browser,  # noqa: F811
):
    plan = api.plan()
    mine, theirs = api.force(plan["id"])["id"], api.force(plan["id"])["id"]
    assert api.settings.lake_uri is not None
    root = Path(api.settings.lake_uri)
    alerts = _fill(root, mine, seed=3, drone_prefix="ours")
    _fill(root, theirs, seed=4, drone_prefix="theirs")
    email, password = _person(api, mine, "officer")

    with serving(api.app) as url:
        page = browser.new_context(viewport={"width": 1280, "height": 1000}).new_page()
        page.goto(f"{url}/dashboard/")
        page.fill("#email", email)
        page.fill("#password", password)
        page.click("button[type=submit]")
        expect(page.locator("#board")).to_be_visible(timeout=20_000)
        page.click("#statistics summary")
        state = page.locator("#stats-state")
        expect(state).to_have_attribute("data-state", "loaded", timeout=60_000)

        # Alerts per hour: each hour its count, the chart given them all.
        per_hour = Counter(_hour(a) for a in alerts)
        assert {k: int(v) for k, v in _keyed(page, "data-alerts").items()} == per_hour
        expect(page.locator("#chart-alerts")).to_have_attribute("data-sum", str(len(alerts)))
        expect(page.locator("#chart-alerts canvas")).to_have_count(1)
        # Reaction by hour: every acknowledgement came ten minutes after its raising.
        acted = {_hour(a) for a in alerts[::2]}
        assert _keyed(page, "data-reaction", column=3) == {
            hour: "600" if hour in acted else "\u2013" for hour in per_hour
        }
        expect(page.locator("#chart-reaction")).to_have_attribute("data-sum", str(10 * len(acted)))

        # The drones and the citizens with most alerts: this force's, counted as raised.
        drones = {k: int(v) for k, v in _keyed(page, "table-drones").items()}
        assert drones == Counter(a.drone_id for a in alerts)
        citizens = {k: int(v) for k, v in _keyed(page, "table-citizens").items()}
        expected = Counter(a.citizen for a in alerts)
        assert citizens == dict(expected.most_common(10)) or (
            len(citizens) == 10 and all(expected[c] == n for c, n in citizens.items())
        )
        assert _keyed(page, "table-words"), "no word heard with an alert"
        assert "theirs-" not in page.locator("#statistics").inner_text()

        # Another window is asked for afresh.
        page.select_option("#stats-window", "168")
        expect(state).to_have_attribute("data-hours", "168", timeout=60_000)
        expect(state).to_have_attribute("data-state", "loaded")
