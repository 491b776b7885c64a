"""The statistics and SQL routes: who may ask, what they see (their force's lake only), and
the audit trail every question leaves."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from peaceland.analytics.lake import (
    LakeWriter,
    LocalStorage,
    alert_rows,
    rows_of_reports,
)
from tests.api.conftest import Api
from tests.factories import make_alert, make_report

AT = datetime(2026, 11, 30, 9, tzinfo=UTC)
WINDOW = {"since": "2026-11-30T08:00:00Z", "until": "2026-11-30T12:00:00Z"}


def _fill(root: Path, force_id: str, reports: int, seed: int) -> list[Any]:
    """Reports (two citizens each) and an alert for each of the first five; the alerts."""
    rng = random.Random(seed)
    made = [make_report(rng, at=AT + timedelta(minutes=i), citizens=2) for i in range(reports)]
    rows = rows_of_reports(made)
    writer = LakeWriter(LocalStorage(root), force_id)
    writer.resume("reports", 0)
    writer.write("reports", 0, reports - 1, rows)
    alerts = [
        make_alert(force_id, r.citizens[0].name, r.timestamp, report_id=r.report_id)
        for r in made[:5]
    ]
    writer.resume("alerts", 0)
    writer.write("alerts", 0, 4, {"alerts": [x for a in alerts for x in alert_rows(a)["alerts"]]})
    return alerts


@pytest.fixture
def lake_forces(api: Api) -> dict[str, Any]:
    plan = api.plan()
    mine, theirs = api.force(plan["id"])["id"], api.force(plan["id"])["id"]
    assert api.settings.lake_uri is not None
    root = Path(api.settings.lake_uri)
    alerts = _fill(root, mine, 40, seed=1)
    _fill(root, theirs, 70, seed=2)
    return {
        "alerts": alerts,
        "mine": mine,
        "theirs": theirs,
        "people": {r: api.member(mine, r) for r in ("force_admin", "officer", "analyst")},
    }


def test_officers_and_analysts_read_their_forces_statistics(api: Api, lake_forces: dict[str, Any]):
    mine = lake_forces["mine"]
    listed = api.client.get(
        f"/v1/forces/{mine}/statistics", headers=lake_forces["people"]["officer"]
    )
    assert listed.status_code == 200, listed.text
    assert "coverage" in {s["name"] for s in listed.json()}
    for role in ("officer", "analyst"):
        answer = api.client.get(
            f"/v1/forces/{mine}/statistics/coverage",
            params=WINDOW | {"zone_degrees": 10},
            headers=lake_forces["people"][role],
        )
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["columns"] == ["zone_latitude", "zone_longitude", "reports", "drone_hours"]
        assert sum(row["reports"] for row in body["rows"]) == 40  # theirs has 70
    hours = api.client.get(
        f"/v1/forces/{mine}/statistics/alerts-per-hour",
        params=WINDOW,
        headers=lake_forces["people"]["analyst"],
    ).json()
    expected = Counter(a.raised_at.strftime("%Y-%m-%dT%H:00:00Z") for a in lake_forces["alerts"])
    assert {row["hour"]: row["alerts"] for row in hours["rows"]} == expected
    assert sum(expected.values()) == 5


def test_statistics_refuse_bad_windows_and_unknown_names(api: Api, lake_forces: dict[str, Any]):
    mine, analyst = lake_forces["mine"], lake_forces["people"]["analyst"]
    url = f"/v1/forces/{mine}/statistics"
    unknown = api.client.get(f"{url}/everything", headers=analyst)
    assert unknown.status_code == 404
    assert "there are: alerts-per-hour" in unknown.json()["detail"]
    backwards = api.client.get(
        f"{url}/coverage",
        params={"since": WINDOW["until"], "until": WINDOW["since"]},
        headers=analyst,
    )
    assert backwards.status_code == 400
    too_long = api.client.get(
        f"{url}/coverage",
        params={"since": "2024-01-01T00:00:00Z", "until": "2026-01-01T00:00:00Z"},
        headers=analyst,
    )
    assert too_long.status_code == 400
    assert "366 days" in too_long.json()["detail"]


def test_analysts_run_sql_over_their_own_force_only_and_admins_read_the_trail(
    api: Api, lake_forces: dict[str, Any]
):
    mine, people = lake_forces["mine"], lake_forces["people"]
    query = "SELECT count(*) AS reports, count(DISTINCT drone_id) AS drones FROM reports"
    answer = api.client.post(
        f"/v1/forces/{mine}/sql", json={"query": query}, headers=people["analyst"]
    )
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["columns"] == ["reports", "drones"]
    assert body["rows"][0][0] == 40
    assert body["truncated"] is False
    cut = api.client.post(
        f"/v1/forces/{mine}/sql",
        json={"query": "SELECT report_id, timestamp FROM reports", "max_rows": 3},
        headers=people["analyst"],
    ).json()
    assert len(cut["rows"]) == 3
    assert cut["truncated"] is True
    assert cut["rows"][0][1].endswith("Z")
    # Reading their force's files, or any file, is refused with the reason.
    theirs = lake_forces["theirs"]
    for escape in (
        f"SELECT * FROM read_parquet('../{theirs}/reports/*/*/*.parquet')",
        "SELECT * FROM read_text('/etc/passwd')",
        f"SELECT * FROM '{api.settings.lake_uri}/{theirs}/reports/x.parquet'",
        "COPY reports TO '/tmp/stolen.csv'",
    ):
        refused = api.client.post(
            f"/v1/forces/{mine}/sql", json={"query": escape}, headers=people["analyst"]
        )
        assert refused.status_code == 400, (escape, refused.text)
    # Officers and the force's admin may not run SQL; nobody may over another force.
    for role in ("officer", "force_admin"):
        denied = api.client.post(
            f"/v1/forces/{mine}/sql", json={"query": query}, headers=people[role]
        )
        assert denied.status_code == 403, role
    assert (
        api.client.post(
            f"/v1/forces/{theirs}/sql", json={"query": query}, headers=people["analyst"]
        ).status_code
        == 404
    )
    # The force's admin reads who asked what, and how many rows came back, refusals too.
    trail = api.client.get(
        f"/v1/forces/{mine}/audit", params={"action": "sql.query"}, headers=people["force_admin"]
    ).json()["items"]
    assert [(e["details"]["query"], e["details"]["rows"]) for e in trail] == [
        ("SELECT report_id, timestamp FROM reports", 3),
        (query, 1),
    ]
    assert {e["actor"] for e in trail} == {trail[0]["actor"]}
    refusals = api.client.get(
        f"/v1/forces/{mine}/audit", params={"action": "sql.refused"}, headers=people["force_admin"]
    ).json()["items"]
    assert len(refusals) == 4
    assert all(e["details"]["reason"] for e in refusals)


def test_the_platform_admin_reads_no_forces_lake(api: Api, lake_forces: dict[str, Any]):
    # Police data is the force's own people's: to the platform's admin, as to a stranger,
    # the force's lake is not there (404, as for its alerts).
    mine = lake_forces["mine"]
    stat = api.client.get(f"/v1/forces/{mine}/statistics/coverage", headers=api.admin)
    assert stat.status_code == 404
    query = api.client.post(f"/v1/forces/{mine}/sql", json={"query": "SELECT 1"}, headers=api.admin)
    assert query.status_code == 404
