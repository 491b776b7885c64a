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


def test_the_analytics_benchmark_prints_a_figure_per_query(tmp_path: Path):
    done = peaceland(
        "bench", "analytics", "--reports", "5000", "--days", "1", "--sample", "300",
        "--engines", "duckdb", "--lake", str(tmp_path),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    figures = [json.loads(line) for line in done.stdout.splitlines()]
    size = next(f for f in figures if f.get("metric") == "lake_bytes_per_report")
    assert size["reports"] == 300
    assert 0 < size["lake_bytes_per_report"] < size["raw_json_bytes_per_report"]
    # 300 reports of a 500-drone fleet: one flush, in one hour; compacted as one file.
    assert size["flushed_files"] == size["compacted_files"] == 2
    assert 0 < size["compacted_bytes_per_report"] <= size["lake_bytes_per_report"]
    generated = next(f for f in figures if f.get("metric") == "generated")
    assert generated["reports"] == 5000
    assert generated["alerts"] > 0
    timed = [f for f in figures if "query" in f]
    assert {f["query"] for f in timed} >= set(STATISTICS)
    assert all(f["engine"] == "duckdb" and f["reports"] == 5000 for f in timed)
    assert all(f["seconds"] >= 0 for f in timed)
    # The generated lake answers like any force's: its alerts are there to count.
    done = peaceland(
        "stats", "alerts-per-hour", "--force", "bench-analytics", "--lake", str(tmp_path),
        "--since", "2026-01-05", "--until", "2026-01-06", "--format", "json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sum(row["alerts"] for row in json.loads(done.stdout)) == generated["alerts"]
