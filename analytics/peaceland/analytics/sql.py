"""Ad-hoc SQL for a force's analysts: read-only SELECTs over that force's four tables only.

Two walls, each enough alone for what it guards:

1. The text is parsed (sqlglot, DuckDB's dialect) and checked before anything runs: one
   statement, a query (SELECT, UNION …, with its CTEs), reading only the tables ``reports``,
   ``sightings``, ``alerts`` and ``lifecycle`` (or its own CTEs), unqualified, and calling
   no function that reaches outside (files, the network, settings, the catalogue, SQL in a
   string). ``SELECT … INTO``, COPY, ATTACH, SET, PRAGMA, INSTALL, LOAD, CREATE … are not
   queries and are refused with the reason.
2. The engine session itself (``ForceLake``) was given the force's own files by name, then
   had every other file access turned off (``enable_external_access``, ``allowed_paths``)
   and its configuration locked: a query that got past the parser could still read nothing
   else, write nothing, load nothing, nor lift its own limits.

Limits: a time limit (the query is interrupted), the session's memory limit (with no
spilling to disk), and a row limit on what is returned (the answer says it was cut).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from peaceland.analytics.lake import TABLES
from peaceland.analytics.stats import ForceLake

#: The longest query text taken.
MAX_QUERY_LENGTH: Final = 20_000

#: Functions that reach outside the force's tables, by name or by prefix (lowercase).
_DENIED: Final = frozenset(
    {
        "query",
        "query_table",
        "getenv",
        "current_setting",
        "getvariable",
        "which_secret",
        "glob",
        "checkpoint",
        "force_checkpoint",
        "load_extension",
        "read_csv",
        "read_json",
        "read_parquet",
        "read_text",
        "read_blob",
        "enable_logging",
        "disable_logging",
        "truncate_duckdb_logs",
        "json_execute_serialized_sql",
        "sql_auto_complete",
        "summary",
    }
)
_DENIED_PREFIXES: Final = (
    "read_",
    "duckdb_",
    "pragma_",
    "parquet_",
    "sniff_",
    "iceberg_",
    "delta_",
    "sqlite_",
    "postgres_",
    "mysql_",
    "pg_",
    "json_execute",
    "test_",
)


class QueryRefusedError(ValueError):
    """The query is not one an analyst may run; says why (an HTTP 400, a CLI error)."""


class QueryFailedError(ValueError):
    """The query was allowed but the engine could not answer it (an unknown column, a type
    error, a limit reached); says why."""


@dataclass(frozen=True, slots=True)
class QueryLimits:
    seconds: float = 30.0
    rows: int = 10_000

    def __post_init__(self) -> None:
        if not 0 < self.seconds <= 600:
            raise ValueError("a query's time limit runs from 0 to 600 seconds")
        if not 1 <= self.rows <= 1_000_000:
            raise ValueError("a query's row limit runs from 1 to 1,000,000")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What an ad-hoc query answered: the SQL run (as checked), columns, rows, whether the
    rows were cut at the limit, and how long it took."""

    sql: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]
    truncated: bool
    seconds: float

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


def _function_name(node: exp.Func) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.name).lower()
    return node.sql_name().lower()


def check_query(text: str) -> str:
    """The query as it will run, once checked; QueryRefusedError with the reason if not."""
    if not text.strip():
        raise QueryRefusedError("the query is empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryRefusedError(f"the query is longer than {MAX_QUERY_LENGTH:,} characters")
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        raise QueryRefusedError(f"not valid SQL{where}: {first.get('description', exc)}") from None
    if len(statements) != 1:
        raise QueryRefusedError(f"one statement at a time ({len(statements)} given)")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper() if isinstance(tree, exp.Expression) else type(tree).__name__
        raise QueryRefusedError(f"only queries (SELECT) may run here, not {kind}")
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    for node in tree.walk():
        if isinstance(node, exp.Into):
            raise QueryRefusedError("SELECT … INTO writes a table: only reading is allowed")
        if isinstance(node, exp.Command):
            raise QueryRefusedError("only queries (SELECT) may run here")
        if isinstance(node, exp.Table):
            _check_table(node, ctes)
        if isinstance(node, exp.Func):
            name = _function_name(node)
            if name in _DENIED or name.startswith(_DENIED_PREFIXES):
                raise QueryRefusedError(
                    f"the function {name} reaches outside the force's tables: not allowed"
                )
    return tree.sql(dialect="duckdb")


def _check_table(node: exp.Table, ctes: set[str]) -> None:
    if not isinstance(node.this, exp.Identifier):
        if isinstance(node.this, exp.Func):
            name = _function_name(node.this)
            if name in ("unnest", "generate_series", "range", "explode"):
                return
            raise QueryRefusedError(
                f"reading from the function {name}: only the tables {', '.join(TABLES)} can be read"
            )
        raise QueryRefusedError(f"only the tables {', '.join(TABLES)} can be read")
    if node.args.get("db") or node.args.get("catalog"):
        raise QueryRefusedError(
            f"{node.sql(dialect='duckdb')}: name the tables alone ({', '.join(TABLES)})"
        )
    name = node.name.lower()
    if node.this.quoted and not name.isidentifier():
        raise QueryRefusedError(f"{node.name!r} is a file, not a table: only the force's tables")
    if name not in TABLES and name not in ctes:
        raise QueryRefusedError(f"no table called {node.name}: the tables are {', '.join(TABLES)}")


def run_query(lake: ForceLake, text: str, limits: QueryLimits | None = None) -> QueryResult:
    """Check ``text``, then run it on ``lake`` within ``limits``."""
    limits = limits or QueryLimits()
    sql = check_query(text)
    began = time.perf_counter()
    timer = threading.Timer(limits.seconds, lake.connection.interrupt)
    timer.start()
    try:
        cursor = lake.connection.execute(sql)
        columns = tuple(d[0] for d in cursor.description or ())
        rows = cursor.fetchmany(limits.rows + 1)
    except duckdb.InterruptException:
        raise QueryFailedError(
            f"the query took longer than its limit of {limits.seconds:g} s and was stopped"
        ) from None
    except duckdb.OutOfMemoryException:
        raise QueryFailedError(
            f"the query needed more memory than its limit ({lake.memory_limit}): "
            "narrow it (fewer days, fewer columns) or aggregate"
        ) from None
    except duckdb.PermissionException as exc:
        raise QueryRefusedError(f"refused by the engine: {exc}") from None
    except duckdb.Error as exc:
        raise QueryFailedError(str(exc)) from None
    finally:
        timer.cancel()
    return QueryResult(
        sql,
        columns,
        tuple(tuple(row) for row in rows[: limits.rows]),
        truncated=len(rows) > limits.rows,
        seconds=round(time.perf_counter() - began, 3),
    )
