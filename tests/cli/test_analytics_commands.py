"""``peaceland stats`` and ``peaceland sql`` as a user runs them, over a lake the real
writer wrote."""

from __future__ import annotations

import csv
import io
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from peaceland.analytics.lake import LakeWriter, LocalStorage, alert_rows
from peaceland.analytics.stats import STATISTICS
from tests.cli.test_commands import peaceland
from tests.factories import make_alert

AT = datetime(2026, 11, 30, 10, 15, tzinfo=UTC)


def _lake(root: Path) -> list[str]:
    rng = random.Random(2)
    citizens = [rng.choice(["Ada", "Ben", "Cleo"]) for _ in range(30)]
    alerts = [make_alert("cli-force", c, AT + timedelta(minutes=i)) for i, c in enumerate(citizens)]
    writer = LakeWriter(LocalStorage(root), "cli-force")
    writer.resume("alerts", 0)
    writer.write("alerts", 0, 29, {"alerts": [r for a in alerts for r in alert_rows(a)["alerts"]]})
    return citizens


def test_stats_answers_as_csv_and_json(tmp_path: Path):
    citizens = _lake(tmp_path)
    common = ["--force", "cli-force", "--lake", str(tmp_path), "--since", "2026-11-30T10:00"]
    common += ["--until", "2026-11-30T12:00"]
    done = peaceland("stats", "top-citizens", *common, "--format", "csv")
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["citizen", "alerts"]
    assert {name: int(n) for name, n in rows[1:]} == {c: citizens.count(c) for c in set(citizens)}
    done = peaceland("stats", "alerts-per-hour", *common, "--format", "json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == [
        {"hour": "2026-11-30T10:00:00Z", "alerts": 30},
    ]
    done = peaceland("stats", "alerts-per-hour", *common)
    assert done.returncode == 0, done.stderr
    assert "2026-11-30T10:00:00Z" in done.stdout


def test_stats_lists_its_statistics_and_refuses_bad_questions(tmp_path: Path):
    done = peaceland("stats", "list")
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()] == list(STATISTICS)
    done = peaceland("stats", "everything", "--lake", str(tmp_path))
    assert done.returncode == 2
    assert "no statistic called 'everything'" in done.stderr
    done = peaceland(
        "stats",
        "coverage",
        "--lake",
        str(tmp_path),
        "--since",
        "2026-12-01",
        "--until",
        "2026-11-01",
    )
    assert done.returncode == 2
    assert "before it starts" in done.stderr
    done = peaceland("stats", "coverage", "--lake", str(tmp_path), "--force", "../etc")
    assert done.returncode == 2
    assert "invalid police force id" in done.stderr


def test_sql_answers_a_query_and_refuses_a_way_out(tmp_path: Path):
    citizens = _lake(tmp_path)
    where = ["--force", "cli-force", "--lake", str(tmp_path)]
    done = peaceland(
        "sql",
        "SELECT citizen, count(*) AS n FROM alerts GROUP BY citizen ORDER BY citizen",
        *where,
        "--format",
        "csv",
    )
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows == [["citizen", "n"]] + [[c, str(citizens.count(c))] for c in sorted(set(citizens))]
    done = peaceland("sql", "SELECT * FROM alerts", *where, "--max-rows", "2", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert len(json.loads(done.stdout)) == 2
    assert "cut at 2 rows" in done.stderr
    done = peaceland("sql", "SELECT * FROM read_csv('/etc/passwd')", *where)
    assert done.returncode == 2
    assert "reading from the function read_csv: only the tables" in done.stderr
