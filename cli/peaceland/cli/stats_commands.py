"""``peaceland stats``: a force's predefined statistics over a time range, from its lake."""

from __future__ import annotations

import csv
import json
import sys
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from peaceland.analytics.lake import open_storage
from peaceland.analytics.stats import STATISTICS, Answer, ForceLake, Options, Window
from peaceland.stack import StackSettings


class Format(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"


def _moment(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _text(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    return "" if value is None else str(value)


def stats(
    statistic: Annotated[
        str,
        typer.Argument(help="One of: " + ", ".join(STATISTICS) + " ('list' describes them)."),
    ],
    force: Annotated[str, typer.Option(help="The police force's id.")] = "demo",
    lake: Annotated[
        str | None,
        typer.Option(help="The lake's URI (default: the local stack's, under its state dir)."),
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
        uri = lake or str(StackSettings().state_dir / "lake")
        with ForceLake(open_storage(uri), force) as force_lake:
            answer = force_lake.answer(statistic, window, options)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    _print(answer, output, window)


def _print(answer: Answer, output: Format, window: Window) -> None:
    if output is Format.json:
        typer.echo(
            json.dumps(
                [
                    {k: _text(v) if isinstance(v, datetime) else v for k, v in r.items()}
                    for r in answer.records()
                ]
            )
        )
    elif output is Format.csv:
        writer = csv.writer(sys.stdout)
        writer.writerow(answer.columns)
        writer.writerows([[_text(v) for v in row] for row in answer.rows])
    else:
        table = Table(
            title=f"{answer.name}, {window.start:%Y-%m-%d %H:%M} to {window.end:%Y-%m-%d %H:%M} UTC"
        )
        for column in answer.columns:
            table.add_column(column)
        for row in answer.rows:
            table.add_row(*[_text(v) for v in row])
        Console().print(table)
