"""The dashboard's statistics panel in a real browser: an officer opens it and reads their
force's figures from the lake (the same the API gives), never another force's."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, expect

from peaceland.analytics.lake import LakeWriter, LocalStorage, alert_rows, rows_of_reports
from tests.api.conftest import Api, serving
from tests.api.test_dashboard import _person, browser  # noqa: F401 - the module's browser
from tests.factories import make_alert, make_report


def _fill(root: Path, force_id: str, seed: int, drone_prefix: str) -> list[Any]:
    """Reports of the last three hours, an alert for one in three (its drone's): the
    alerts, as the lake consumer would write them."""
    rng = random.Random(seed)
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    made = [
        make_report(rng, at=now - timedelta(minutes=2 * i + 5), citizens=2).model_copy(
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
    writer.resume("alerts", 0)
    writer.write(
        "alerts",
        0,
        len(alerts) - 1,
        {"alerts": [x for a in alerts for x in alert_rows(a)["alerts"]]},
    )
    return alerts


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
        expect(page.locator("#stats-state")).to_have_attribute(
            "data-state", "loaded", timeout=60_000
        )

        # Alerts per hour: the chart drawn, its figures those raised.
        expect(page.locator("#chart-alerts canvas")).to_have_count(1)
        shown = {
            int(row.locator("td").nth(1).inner_text())
            for row in page.locator("#data-alerts tr").all()[1:]
        }
        per_hour = Counter(a.raised_at.replace(minute=0, second=0) for a in alerts)
        assert sum(int(r.locator("td").nth(1).inner_text())
                   for r in page.locator("#data-alerts tr").all()[1:]) == len(alerts)  # fmt: skip
        assert shown == set(per_hour.values())
        expect(page.locator("#chart-reaction canvas")).to_have_count(1)

        # The drones with most alerts: this force's, as many as it raised each.
        drones = Counter(a.drone_id for a in alerts)
        rows = page.locator("#table-drones tr").all()[1:]
        assert {r.locator("td").nth(0).inner_text(): int(r.locator("td").nth(1).inner_text())
                for r in rows} == dict(drones)  # fmt: skip
        assert "theirs-" not in page.locator("#statistics").inner_text()
        expect(page.locator("#table-citizens tr")).not_to_have_count(0)
        expect(page.locator("#table-words td").first).to_be_visible()

        # Another window is asked for afresh.
        page.select_option("#stats-window", "168")
        expect(page.locator("#stats-state")).to_have_attribute("data-hours", "168", timeout=60_000)
        expect(page.locator("#stats-state")).to_have_attribute("data-state", "loaded")
