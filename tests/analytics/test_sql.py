"""Ad-hoc SQL: what analysts may ask, and every way out of the sandbox we could think of,
refused by the parser and, behind it, by the engine session itself."""

from __future__ import annotations

import time
from pathlib import Path

import duckdb
import pytest

from peaceland.analytics.lake import LocalStorage
from peaceland.analytics.sql import (
    STARTUP_SECONDS,
    QueryFailedError,
    QueryLimits,
    QueryRefusedError,
    ask,
    check_query,
    run_query,
)
from peaceland.analytics.stats import ForceLake
from tests.analytics.test_stats import FORCE, write_history

OTHER = "other-force"


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    write_history(root)
    # Another force's lake beside it, and a file that is nobody's table.
    other = root / OTHER / "alerts" / "date=2026-11-30" / "hour=00"
    other.mkdir(parents=True)
    source = next((root / FORCE / "alerts").glob("*/*/*.parquet"))
    (other / "p0-000000000000-000000000001-x.parquet").write_bytes(source.read_bytes())
    (root / "secret.csv").write_text("password\nhunter2\n")
    return root


@pytest.fixture
def lake(root: Path):
    with ForceLake(LocalStorage(root), FORCE, memory_limit="256MB") as lake:
        yield lake


def test_analysts_ask_what_they_like_of_their_own_tables(lake: ForceLake):
    result = run_query(
        lake,
        """
        WITH raised AS (SELECT alert_id, citizen, raised_at FROM alerts WHERE event = 'raised')
        SELECT r.citizen, count(*) AS alerts, count(l.seq) AS acts,
               row_number() OVER (ORDER BY count(*) DESC, r.citizen) AS rank
        FROM raised r LEFT JOIN lifecycle l USING (alert_id)
        GROUP BY r.citizen ORDER BY rank
        """,
    )
    assert result.columns == ("citizen", "alerts", "acts", "rank")
    assert result.rows
    assert not result.truncated
    words = run_query(
        lake, "SELECT w, count(*) FROM (SELECT unnest(words) AS w FROM reports) GROUP BY w"
    )
    assert words.rows
    assert run_query(lake, "FROM sightings SELECT count(*)").rows[0][0] > 0
    assert run_query(lake, "SELECT * FROM range(3) t(x)").rows == ((0,), (1,), (2,))


def test_the_row_limit_cuts_and_says_so(lake: ForceLake):
    result = run_query(lake, "SELECT * FROM sightings", QueryLimits(rows=5))
    assert len(result.rows) == 5
    assert result.truncated


def test_the_time_limit_stops_a_query(lake: ForceLake):
    with pytest.raises(QueryFailedError, match=r"longer than its limit of 0\.5 s"):
        run_query(
            lake,
            "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range * b.range = 7",
            QueryLimits(seconds=0.5),
        )
    # The session answers again afterwards.
    assert run_query(lake, "SELECT count(*) FROM alerts").rows[0][0] > 0


def test_the_memory_limit_stops_a_query(lake: ForceLake):
    with pytest.raises(QueryFailedError, match="more memory than its limit"):
        run_query(lake, "SELECT list(range) FROM range(100000000)")


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("", "empty"),
        ("SELECT 1; SELECT 2", "one statement at a time"),
        ("SELEC 1", "not valid SQL"),
        ("COPY alerts TO '/tmp/out.csv'", "only queries"),
        ("COPY (SELECT * FROM alerts) TO 'x.parquet'", "only queries"),
        ("ATTACH '/tmp/x.db' AS x", "only queries"),
        ("INSTALL httpfs", "only queries"),
        ("LOAD httpfs", "only queries"),
        ("SET enable_external_access = true", "only queries"),
        ("PRAGMA version", "only queries"),
        ("CREATE TABLE t AS SELECT * FROM alerts", "only queries"),
        ("DROP VIEW alerts", "only queries"),
        ("INSERT INTO alerts SELECT * FROM alerts", "only queries"),
        ("EXPORT DATABASE '/tmp/db'", "not valid SQL"),
        ("CALL pragma_version()", "only queries"),
        ("SUMMARIZE alerts", "only queries"),
        ("DESCRIBE alerts", "only queries"),
        ("SELECT * INTO t FROM alerts", "INTO"),
        ("SELECT * FROM read_csv('/etc/passwd')", "read_csv"),
        ("SELECT * FROM read_text('/etc/passwd')", "read_text"),
        ("SELECT * FROM read_parquet('../other-force/alerts/*/*/*.parquet')", "read_parquet"),
        ("SELECT * FROM parquet_scan('x.parquet')", "parquet_scan"),
        ("SELECT * FROM '/etc/passwd'", "is a file"),
        ("SELECT * FROM 'secret.csv'", "is a file"),
        ("SELECT * FROM glob('/*')", "glob"),
        ("SELECT * FROM query('SELECT 1')", "query"),
        ("SELECT * FROM query_table('alerts')", "query_table"),
        ("SELECT getenv('HOME')", "getenv"),
        ("SELECT current_setting('allowed_paths')", "current_setting"),
        ("SELECT * FROM duckdb_settings()", "duckdb_settings"),
        ("SELECT * FROM duckdb_tables()", "duckdb_tables"),
        ("SELECT * FROM pragma_database_list()", "pragma_database_list"),
        ("SELECT * FROM information_schema.tables", "name the tables alone"),
        ("SELECT * FROM memory.main.alerts", "name the tables alone"),
        ("SELECT * FROM _alerts_empty", "no table called"),
        ("SELECT * FROM other_force_alerts", "no table called"),
        ("WITH x AS (SELECT * FROM read_csv('/etc/passwd')) SELECT * FROM x", "read_csv"),
        ("SELECT (SELECT count(*) FROM read_text('/etc/hostname'))", "read_text"),
        ("SELECT * FROM alerts UNION ALL SELECT * FROM read_json('x.json')", "read_json"),
    ],
)
def test_every_way_out_is_refused_before_it_runs(lake: ForceLake, query: str, reason: str):
    with pytest.raises(QueryRefusedError, match=reason):
        run_query(lake, query)


@pytest.mark.parametrize(
    "statement",
    [
        f"SELECT * FROM read_parquet('{{root}}/{OTHER}/alerts/*/*/*.parquet')",
        "SELECT * FROM read_csv('{root}/secret.csv')",
        "SELECT * FROM read_text('/etc/passwd')",
        "SELECT * FROM read_text('{root}/" + FORCE + "/_lake/alerts/p0.json')",
        "SELECT * FROM glob('{root}/*')",
        "COPY (SELECT 1) TO '{root}/" + FORCE + "/alerts/out.csv'",
        "ATTACH '{root}/x.db' AS x",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET enable_external_access = true",
        "SET allowed_paths = ['/']",
        "SET memory_limit = '100GB'",
        "SET temp_directory = '/tmp'",
    ],
)
def test_behind_the_parser_the_engine_refuses_too(lake: ForceLake, root: Path, statement: str):
    # As if the parser had let it through: the session alone must refuse.
    with pytest.raises(duckdb.Error):
        lake.connection.execute(statement.format(root=root)).fetchall()
    assert not (root / FORCE / "alerts" / "out.csv").exists()


def test_the_sql_run_is_the_sql_checked():
    assert check_query("select count(*) from alerts") == "SELECT COUNT(*) FROM alerts"


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        # A CTE of one subquery does not name a table in another (the catalogue's views).
        (
            "SELECT * FROM (WITH sqlite_master AS (SELECT 1) SELECT 1) d, sqlite_master",
            "no table called sqlite_master",
        ),
        (
            "SELECT * FROM (WITH duckdb_views AS (SELECT 1) SELECT 1) d, duckdb_views",
            "no table called duckdb_views",
        ),
        ("SELECT * FROM (WITH _alerts_empty AS (SELECT 1) SELECT 1) d, _alerts_empty", "no table"),
        # Table functions behind LATERAL.
        ("SELECT * FROM alerts, LATERAL repeat_row(1, num_rows := 3)", "repeat_row"),
        ("SELECT * FROM alerts, LATERAL json_each('[1]')", "json_each"),
        ("SELECT * FROM alerts, LATERAL enable_profiling()", "enable_profiling"),
        # SQL held in a string.
        ("SELECT json_serialize_plan('SELECT current_setting(''threads'')')", "json_serialize"),
        # What the tokenizer or the checker cannot take is refused, not a 500.
        ("SELECT '", "not valid SQL"),
        ("SELECT 1 /* x", "not valid SQL"),
        ('SELECT "', "not valid SQL"),
        ("SELECT " + "(" * 3000 + "1" + ")" * 3000, "nests too deeply"),
        ("SELECT 'a\x00b'", "control characters"),
    ],
)
def test_the_reviews_ways_past_the_parser_are_refused(lake: ForceLake, query: str, reason: str):
    with pytest.raises(QueryRefusedError, match=reason):
        run_query(lake, query)


def test_a_visible_cte_still_reads_as_a_table(lake: ForceLake):
    result = run_query(
        lake,
        "WITH a AS (SELECT count(*) AS n FROM alerts), b AS (SELECT n FROM a) "
        "SELECT * FROM b WHERE EXISTS (WITH q AS (SELECT 1) SELECT * FROM q)",
    )
    assert result.rows[0][0] > 0
    recursive = run_query(
        lake,
        "WITH RECURSIVE t(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM t WHERE n < 5) "
        "SELECT count(*) FROM t",
    )
    assert recursive.rows == ((5,),)


def test_in_its_own_process_a_query_is_held_to_its_memory_and_time(root: Path):
    storage = LocalStorage(root)
    # One function call building gigabytes: DuckDB's memory_limit does not see it; the
    # child's address-space cap does, and the control plane's process never grows.
    with pytest.raises(QueryFailedError, match=r"memory|engine stopped"):
        ask(
            storage, FORCE, "SELECT length(repeat('x', 2000000000))",
            QueryLimits(seconds=30), memory_bytes=256 * 1024 * 1024,
        )  # fmt: skip
    began = time.monotonic()
    with pytest.raises(QueryFailedError, match="longer than its limit"):
        ask(
            storage, FORCE,
            "SELECT count(*) FROM range(100000) a, range(100000) b WHERE a.range * b.range = 7",
            QueryLimits(seconds=1), memory_bytes=256 * 1024 * 1024,
        )  # fmt: skip
    assert time.monotonic() - began < 1 + STARTUP_SECONDS + 5
    # Values Python cannot even hold come back as an error, not a crash.
    with pytest.raises(QueryFailedError):
        ask(
            storage, FORCE, "SELECT INTERVAL 2147483647 MONTH",
            QueryLimits(), memory_bytes=256 * 1024 * 1024,
        )  # fmt: skip
    answer = ask(
        storage, FORCE, "SELECT count(*) AS n, min(raised_at) AS first FROM alerts",
        QueryLimits(), memory_bytes=256 * 1024 * 1024,
    )  # fmt: skip
    assert answer.columns == ("n", "first")
    assert answer.rows[0][0] > 0
    assert answer.rows[0][1].endswith("Z")
    with pytest.raises(QueryFailedError, match="over 1 MiB"):
        ask(
            storage, FORCE, "SELECT * FROM sightings, range(40)", QueryLimits(rows=1_000_000),
            memory_bytes=256 * 1024 * 1024, result_bytes=1024 * 1024,
        )  # fmt: skip
