"""``peaceland stats`` and ``peaceland sql``: a force's statistics and analysts' own questions,
answered from its lake on this machine (DuckDB, in a session that sees that force's files only).

These read the lake's files directly: the local platform's on the stack's S3 store as the
store's administrator, any other (``--lake``) as whoever the AWS SDK's sources or this
machine's files let read it. Analysts elsewhere ask through the control plane's API, which
reads each force's lake under that force's own key and audits every query.
"""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.table import Table

from peaceland.analytics.isolated import to_json
from peaceland.analytics.lake import open_storage
from peaceland.analytics.mirror import LocalLake, readable
from peaceland.analytics.sql import QueryLimits, run_query
from peaceland.analytics.stats import STATISTICS, Answer, ForceLake, Options, Window
from peaceland.stack import Stack, StackSettings
from peaceland.stack.kube import LOCAL_NAMESPACE


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    """A value as a table's or a CSV's cell: as the API writes it (times in UTC, with a Z)."""
    converted = to_json(value)
    return "" if converted is None else str(converted)


def stats(
    statistic: Annotated[
        str,
        typer.Argument(help="One of: " + ", ".join(STATISTICS) + " ('list' describes them)."),
    ],
    force: Annotated[str, typer.Option(help="The police force's id.")] = "demo",
    lake: Annotated[
        str | None,
        typer.Option(
            help="The lake's URI (default: the local platform's, on the stack's S3 store)."
        ),
    ] = None,
    since: Annotated[
        str | None,
        typer.Option(help="Start, ISO 8601 (UTC unless a zone is given); default: 24 h ago."),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="End (excluded), ISO 8601; default: now.")
    ] = None,
    zone_degrees: Annotated[
        float, typer.Option(help="Side of a zone of the grid, in degrees.")
    ] = 0.01,
    top: Annotated[int, typer.Option(help="Length of top lists.")] = 20,
    output: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Answer a predefined statistic of a force over a time range (DuckDB over its lake)."""
    if statistic == "list":
        for name, known in STATISTICS.items():
            typer.echo(f"{name:18} {known.description}")
        return
    try:
        end = _moment(until) if until else datetime.now(UTC)
        window = Window(_moment(since) if since else end - timedelta(days=1), end)
        options = Options(zone_degrees=zone_degrees, top=top)
        with ForceLake(_readable(lake, force), force) as force_lake:
            answer = force_lake.answer(statistic, window, options)
    except (ValueError, OSError, duckdb.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _print(answer, output, window)


def _readable(uri: str | None, force: str) -> LocalLake:
    """The force's lake at ``uri`` as the engines read it (an object store's copied under
    the stack's state directory first); None: the local platform's, on the stack's S3 store,
    read as the store's administrator."""
    settings = StackSettings()
    if uri is not None:
        storage = open_storage(uri)
    else:
        store = Stack(settings).endpoints().s3
        if store is None:
            raise ValueError("the local stack runs no S3 store: give --lake")
        storage = open_storage(
            store.lake_uri(LOCAL_NAMESPACE), s3_keys=(store.access_key, store.secret_key)
        )
    return readable(storage, force, settings.state_dir / "lake-mirror")


def sql(
    query: Annotated[
        str, typer.Argument(help="One SELECT over reports, sightings, alerts, lifecycle.")
    ],
    force: Annotated[str, typer.Option(help="The police force's id.")] = "demo",
    lake: Annotated[
        str | None,
        typer.Option(
            help="The lake's URI (default: the local platform's, on the stack's S3 store)."
        ),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds before the query is stopped.")] = 30.0,
    max_rows: Annotated[int, typer.Option(help="Rows returned at most.")] = 10_000,
    memory: Annotated[str, typer.Option(help="The engine's memory limit.")] = "1GB",
    output: Annotated[Format, typer.Option("--format", help="table, csv or json.")] = Format.table,
) -> None:
    """Run a read-only SQL query over a force's tables (checked first; limits on time,
    memory and rows). docs/analytics.md lists the tables and their columns."""
    try:
        limits = QueryLimits(seconds=timeout, rows=max_rows)
        with ForceLake(_readable(lake, force), force, memory_limit=memory) as force_lake:
            result = run_query(force_lake, query, limits)
    except (ValueError, OSError, duckdb.Error) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    answer = Answer("sql", result.columns, result.rows)
    _print(answer, output, None)
    if result.truncated:
        typer.echo(f"(cut at {max_rows:,} rows: --max-rows for more)", err=True)


def _print(answer: Answer, output: Format, window: Window | None) -> None:
    if output is Format.json:
        typer.echo(json.dumps(to_json(answer.records())))
    elif output is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(answer.columns)
        writer.writerows([[_text(v) for v in row] for row in answer.rows])
    else:
        title = answer.name
        if window is not None:
            title += f", {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
        table = Table(title=title)
        for column in answer.columns:
            table.add_column(column)
        for row in answer.rows:
            table.add_row(*[_text(v) for v in row])
        Console().print(table)
