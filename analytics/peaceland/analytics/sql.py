"""Ad-hoc SQL for a force's analysts: read-only SELECTs over that force's four tables only.

Two walls, and a process of its own:

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

3. ``ask`` runs the checked query in a child process whose address space the kernel caps
   and whose deadline kills it (``peaceland.analytics.isolated``): DuckDB's memory limit
   does not see what one function call builds, nor does an interrupt stop one call.

Limits: a time limit (the query is interrupted, the child killed), the session's memory
limit (with no spilling to disk), and a row limit on what is returned (the answer says it
was cut).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Final

import duckdb
import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError, SqlglotError
from sqlglot.optimizer.scope import traverse_scope

from peaceland.analytics.isolated import Budget, IsolatedFailureError, run_isolated
from peaceland.analytics.lake import TABLES
from peaceland.analytics.mirror import Handed, LocalLake, hand, received
from peaceland.analytics.stats import ForceLake
from peaceland.tenants.forces import validate_force_id

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
        "repeat_row",
    }
)
#: The table functions a query may read from (everything else in a FROM is a table).
_TABLE_FUNCTIONS: Final = frozenset({"unnest", "generate_series", "range", "explode"})
#: Characters a query never needs (NUL cannot even be stored in the audit log).
_CONTROL: Final = frozenset(chr(c) for c in range(32)) - {"\t", "\n", "\r"}
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
    "json_serialize",
    "json_deserialize",
    "enable_",
    "disable_",
    "add_",
    "register_",
    "python_",
    "set_",
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
    tree = _parse(text)
    try:
        resolved = _resolve_tables(tree)
        for node in tree.walk():
            _check_node(node, resolved)
        return tree.sql(dialect="duckdb")
    except RecursionError:
        raise QueryRefusedError("the query nests too deeply to be checked") from None


def _parse(text: str) -> exp.Query:
    """The one query ``text`` holds, parsed in DuckDB's dialect."""
    if not text.strip():
        raise QueryRefusedError("the query is empty")
    if len(text) > MAX_QUERY_LENGTH:
        raise QueryRefusedError(f"the query is longer than {MAX_QUERY_LENGTH:,} characters")
    if _CONTROL.intersection(text):
        raise QueryRefusedError("the query holds control characters (only tabs and newlines)")
    try:
        statements = [s for s in sqlglot.parse(text, read="duckdb") if s is not None]
    except ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" (line {first.get('line')}, column {first.get('col')})" if first else ""
        raise QueryRefusedError(f"not valid SQL{where}: {first.get('description', exc)}") from None
    except SqlglotError as exc:  # an unterminated string or comment …
        raise QueryRefusedError(f"not valid SQL: {exc}") from None
    except RecursionError:
        raise QueryRefusedError("the query nests too deeply to be checked") from None
    if len(statements) != 1:
        raise QueryRefusedError(f"one statement at a time ({len(statements)} given)")
    tree = statements[0]
    if not isinstance(tree, exp.Query):
        kind = tree.key.upper() if isinstance(tree, exp.Expression) else type(tree).__name__
        raise QueryRefusedError(f"only queries (SELECT) may run here, not {kind}")
    return tree


def _check_node(node: exp.Expr, resolved: set[int]) -> None:
    if isinstance(node, exp.Into):
        raise QueryRefusedError("SELECT … INTO writes a table: only reading is allowed")
    if isinstance(node, exp.Command):
        raise QueryRefusedError("only queries (SELECT) may run here")
    if isinstance(node, exp.Table) and id(node) not in resolved:
        _check_table(node)
    if isinstance(node, exp.Lateral) or (
        isinstance(node, exp.Table) and isinstance(node.this, exp.Func)
    ):
        _check_table_function(node)
    if isinstance(node, exp.Func):
        name = _function_name(node)
        if name in _DENIED or name.startswith(_DENIED_PREFIXES):
            raise QueryRefusedError(
                f"the function {name} reaches outside the force's tables: not allowed"
            )


def _resolve_tables(tree: exp.Query) -> set[int]:
    """The table references that name a CTE visible where they stand (sqlglot's scopes: a
    CTE of one subquery does not name a table of another)."""
    try:
        scopes = traverse_scope(tree)
    except SqlglotError as exc:
        raise QueryRefusedError(f"the query cannot be checked: {exc}") from None
    resolved: set[int] = set()
    for scope in scopes:
        visible = {name.lower() for name in scope.cte_sources}
        for table in scope.tables:
            named = isinstance(table.this, exp.Identifier) and not table.args.get("db")
            if named and table.name.lower() in visible:
                resolved.add(id(table))
    return resolved


def _check_table_function(node: exp.Table | exp.Lateral) -> None:
    """A function read as a table (FROM f(…), LATERAL f(…)): only the allowed few."""
    function = node.this
    if isinstance(function, exp.Unnest | exp.Explode):
        return
    if isinstance(function, exp.Func):
        name = _function_name(function)
        if name in _TABLE_FUNCTIONS:
            return
        raise QueryRefusedError(
            f"reading from the function {name}: only the tables {', '.join(TABLES)} can be read"
        )
    if isinstance(node, exp.Lateral) and isinstance(function, exp.Query | exp.Subquery):
        return
    raise QueryRefusedError(f"only the tables {', '.join(TABLES)} can be read")


def _check_table(node: exp.Table) -> None:
    if not isinstance(node.this, exp.Identifier):
        if isinstance(node.this, exp.Func):
            return  # a table function: _check_table_function
        raise QueryRefusedError(f"only the tables {', '.join(TABLES)} can be read")
    if node.args.get("db") or node.args.get("catalog"):
        raise QueryRefusedError(
            f"{node.sql(dialect='duckdb')}: name the tables alone ({', '.join(TABLES)})"
        )
    name = node.name.lower()
    if node.this.quoted and not name.isidentifier():
        raise QueryRefusedError(f"{node.name!r} is a file, not a table: only the force's tables")
    if name not in TABLES:
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


def _query_job(
    handed: Handed, force_id: str, sql: str, rows: int, seconds: float, memory: str
) -> dict[str, Any]:
    """In the child: the checked ``sql`` on the force's tables (``ask``)."""
    with ForceLake(received(handed), force_id, memory_limit=memory) as lake:
        result = run_query(lake, sql, QueryLimits(seconds=seconds, rows=rows))
    return {
        "sql": result.sql,
        "columns": list(result.columns),
        "rows": [list(row) for row in result.rows],
        "truncated": result.truncated,
        "seconds": result.seconds,
    }


#: How long a child may take to start and open the force's tables, beyond the query's own
#: limit, before it is killed.
STARTUP_SECONDS: Final = 10.0


def ask(
    storage: LocalLake,
    force_id: str,
    text: str,
    limits: QueryLimits,
    *,
    memory_bytes: int,
    result_bytes: int = 64 * 1024 * 1024,
) -> QueryResult:
    """Check ``text`` here, then run it in a process of its own (``isolated``): the
    kernel holds it to ``memory_bytes``, the deadline kills it, an answer over
    ``result_bytes`` is refused. The rows come back as JSON values."""
    sql = check_query(text)
    memory = f"{max(memory_bytes // (1024 * 1024), 64)}MB"
    budget = Budget(limits.seconds + STARTUP_SECONDS, memory_bytes, result_bytes)
    args = (
        hand(storage),
        validate_force_id(force_id),
        sql,
        limits.rows,
        limits.seconds,
        memory,
    )
    try:
        answer = run_isolated(_query_job, args, budget)
    except IsolatedFailureError as exc:
        if exc.kind == "QueryRefusedError":
            raise QueryRefusedError(str(exc)) from None
        raise QueryFailedError(str(exc)) from None
    return QueryResult(
        answer["sql"],
        tuple(answer["columns"]),
        tuple(tuple(row) for row in answer["rows"]),
        truncated=answer["truncated"],
        seconds=answer["seconds"],
    )
