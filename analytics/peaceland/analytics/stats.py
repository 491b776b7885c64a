"""The predefined statistics of a force over a time range, asked of its lake with DuckDB.

A :class:`ForceLake` is one DuckDB connection that sees one force's four tables and nothing
else: each table is a view over that force's files only (the force's directory, never a
pattern another force's files could match). Every statistic is plain SQL over those views,
filtered on the rows' own time and on the date partitions (so a day's question reads that
day's files only), and answers as columns and rows.

Zones are cells of a grid of ``zone_degrees`` (0.01° by default: about 1.1 km north-south,
0.7 km east-west at Paris), named by their south-west corner.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

import duckdb
import pyarrow as pa

from peaceland.analytics.compaction import reading_of
from peaceland.analytics.isolated import Budget, run_isolated
from peaceland.analytics.lake import (
    SCHEMAS,
    TIME_COLUMN,
    LocalStorage,
    Storage,
    Table,
    utc,
)
from peaceland.analytics.mirror import Handed, LocalLake, Snapshot, hand, received
from peaceland.analytics.rollups import (
    ALERTED_FROM,
    ALERTED_UNTIL,
    ROLLUP_GRID,
    schema_of,
    zone_sql,
)
from peaceland.tenants.forces import validate_force_id


@dataclass(frozen=True, slots=True)
class Answer:
    """A statistic's result: its columns, then its rows in order."""

    name: str
    columns: tuple[str, ...]
    rows: tuple[tuple[Any, ...], ...]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in self.rows]


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range [start, end), in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("a window's bounds carry their time zone")
        if self.end <= self.start:
            raise ValueError(f"the window ends ({self.end}) before it starts ({self.start})")


@dataclass(frozen=True, slots=True)
class Options:
    """How a statistic is cut: the zone grid and the length of top lists."""

    zone_degrees: float = 0.01
    top: int = 20

    def __post_init__(self) -> None:
        if not 0.0001 <= self.zone_degrees <= 10:
            raise ValueError("zone_degrees runs from 0.0001 to 10")
        if not 1 <= self.top <= 10_000:
            raise ValueError("top runs from 1 to 10,000")


class ForceLake:
    """One force's tables in the lake, as DuckDB views of its files; close() when done.

    The session is given the force's files by name, then every other file access is turned
    off and its configuration locked (``peaceland.analytics.sql`` runs analysts' SQL on it):
    no query can read another file, write one, load an extension or lift a limit. Nothing
    spills to disk: ``memory_limit`` is a limit.
    """

    def __init__(
        self,
        storage: Storage,
        force_id: str,
        *,
        threads: int = 2,
        memory_limit: str = "1GB",
        spill: Path | None = None,
    ) -> None:
        """``spill``: a directory of its own where the engine may spill what does not fit
        in ``memory_limit`` (the predefined statistics over long windows); None: nothing
        spills, the memory limit is a limit (analysts' SQL)."""
        self.force_id = validate_force_id(force_id)
        self.memory_limit = memory_limit
        if not isinstance(storage, LocalStorage | Snapshot):
            raise ValueError(
                f"the lake at {storage.locate('')} is read through a snapshot on this "
                "machine's disk (peaceland.analytics.mirror)"
            )
        self.connection = duckdb.connect(
            config={
                "threads": threads,
                "memory_limit": memory_limit,
                "temp_directory": str(spill) if spill is not None else "",
            }
        )
        for attempt in range(3):
            try:
                readable = self._views(storage)
                break
            except duckdb.IOException:
                # A file listed a moment ago went meanwhile (an hour past the retention, or
                # files a compaction replaced): list again.
                if attempt == 2:
                    self.connection.close()
                    raise
            except duckdb.Error:
                self.connection.close()
                raise
        self.connection.execute("SET allowed_paths = ?", [readable])
        self.connection.execute("SET enable_external_access = false")
        self.connection.execute("SET lock_configuration = true")

    def _views(self, storage: Storage) -> list[str]:
        """A view of each table over its live files, and the statistics' own views
        (``rollups.Reading``); the files it may read."""
        located = {
            view: [storage.locate(f) for f in files]
            for view, files in reading_of(storage, self.force_id).files.items()
        }
        for view, files in located.items():
            self._files_view(view, files)
        return sorted({f for files in located.values() for f in files})

    def _files_view(self, name: str, files: list[str]) -> None:
        """View ``name``: the rows of ``files``, with their partitions."""
        if files:
            listed = ", ".join(f"'{_quoted(f)}'" for f in files)
            self.connection.execute(
                f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM read_parquet("
                f"[{listed}], hive_partitioning = true, "
                "hive_types = {'date': DATE, 'hour': INTEGER})"
            )
            return
        # No file yet: the same columns, no row (a statistic over nothing is empty).
        self.connection.register(f"_{name}_empty", no_rows(name))
        self.connection.execute(f"CREATE OR REPLACE VIEW {name} AS SELECT * FROM _{name}_empty")

    def close(self) -> None:
        self.connection.close()

    def __enter__(self) -> ForceLake:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def answer(self, name: str, window: Window, options: Options | None = None) -> Answer:
        """Statistic ``name`` (one of ``STATISTICS``) over ``window``."""
        statistic = STATISTICS.get(name)
        if statistic is None:
            raise UnknownStatisticError(name)
        sql, parameters = statistic.sql(window, options or Options())
        cursor = self.connection.execute(sql, parameters)
        columns = tuple(d[0] for d in cursor.description or ())
        return Answer(name, columns, tuple(tuple(row) for row in cursor.fetchall()))


class UnknownStatisticError(ValueError):
    def __init__(self, name: str) -> None:
        super().__init__(f"no statistic called {name!r}; there are: {', '.join(STATISTICS)}")


def no_rows(view: str) -> pa.Table:
    """A view's columns (``rollups.schema_of``), with its partitions' (``date``, ``hour``),
    and no row: what an engine's view without a file yet reads."""
    empty = pa.Table.from_pylist([], schema=schema_of(view))
    empty = empty.append_column("date", pa.array([], pa.date32()))
    return empty.append_column("hour", pa.array([], pa.int32()))


def _quoted(text: str) -> str:
    return text.replace("'", "''")


def within(table: Table, alias: str = "") -> str:
    """The SQL condition keeping ``table``'s rows of the window ($start, $end), pruning
    its date partitions first."""
    prefix = f"{alias}." if alias else ""
    column = f'{prefix}"{TIME_COLUMN[table]}"'
    return (
        f'{prefix}"date" BETWEEN CAST($start AS DATE) AND CAST($end AS DATE) '
        f"AND {column} >= $start AND {column} < $end"
    )


def _zone(options: Options, alias: str = "") -> str:
    return zone_sql(options.zone_degrees, alias)


Sql = tuple[str, dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Statistic:
    """A predefined question: what it answers, and its SQL for a window."""

    description: str
    build: Callable[[Options], str]

    def sql(self, window: Window, options: Options) -> Sql:
        parameters = {"start": utc(window.start), "end": utc(window.end)}
        return self.build(options), parameters


def _alerts_per_hour(_: Options) -> str:
    return f"""
        SELECT date_trunc('hour', raised_at) AS hour, count(DISTINCT alert_id) AS alerts
        FROM alerts WHERE event = 'raised' AND {within("alerts")}
        GROUP BY 1 ORDER BY 1"""


def _alerts_per_zone(options: Options) -> str:
    return f"""
        SELECT {_zone(options)}, count(DISTINCT alert_id) AS alerts
        FROM alerts WHERE event = 'raised' AND {within("alerts")}
        GROUP BY 1, 2 ORDER BY alerts DESC, 1, 2"""


def _whole_hour(hour_start: str) -> str:
    """The SQL condition: the hour starting at ``hour_start`` lies wholly in the window."""
    return f"({hour_start} >= $start AND {hour_start} + INTERVAL 1 HOUR <= $end)"


#: The rows of a rollup (``rollups``) for the hours wholly in the window.
_ROLLED: Final = (
    'WHERE "date" BETWEEN CAST($start AS DATE) AND CAST($end AS DATE) AND '
    + _whole_hour("hour_start")
)


def _unique_reports(rolled_up: bool) -> str:
    """A CTE: the reports of the window, each once. A report a drone sent again has its
    first sending's time, so both are in one hour: the compacted hours hold each report
    once as they are; only the others' rows of the window are deduplicated, within their
    hour (a resend stamped in another hour, a broken drone clock, counts in each, whatever
    was compacted).

    ``rolled_up``: leave out the hours wholly in the window that have their rollups (the
    statistic reads those instead); of them, only the window's first and last hours may
    be partly in it."""
    rolled = f"SELECT {_REPORT_COLUMNS} FROM _reports_rolled WHERE {within('reports')}"
    if rolled_up:
        edges = (
            '(("date" = CAST($start AS DATE) AND "hour" = hour($start)) '
            'OR ("date" = CAST($end AS DATE) AND "hour" = hour($end)))'
        )
        hour_start = "date_trunc('hour', \"timestamp\")"
        rolled += f" AND {edges} AND NOT {_whole_hour(hour_start)}"
    return f"""
        unique_reports AS (
            {rolled}
            UNION ALL
            SELECT {_REPORT_COLUMNS} FROM _reports_once WHERE {within("reports")}
            UNION ALL
            SELECT {_REPORT_COLUMNS} FROM (
                SELECT *, row_number() OVER (
                    PARTITION BY report_id, "date", "hour" ORDER BY "timestamp") AS copy
                FROM _reports_others WHERE {within("reports")}
            ) WHERE copy = 1
        )"""


#: The columns of the reports table's view, named (so that both engines' unions agree).
_REPORT_COLUMNS: Final = ", ".join(f'"{c}"' for c in [*SCHEMAS["reports"].names, "date", "hour"])


def _coverage(options: Options) -> str:
    # A zone's drone-hours: its distinct drones in each hour, summed over the hours (a
    # drone patrolling a zone all day counts more than one passing by once; an hour's
    # rollup can say it, where distinct drones over a week would need every drone's id).
    rolled_up = options.zone_degrees == ROLLUP_GRID  # else no rollup of this grid
    rollups = f"""
            UNION ALL
            SELECT zone_latitude, zone_longitude, reports, drones AS drone_hours
            FROM zone_counts {_ROLLED}"""
    return f"""
        WITH {_unique_reports(rolled_up=rolled_up)},
        per_drone_hour AS (
            SELECT {_zone(options)}, drone_id, "date", "hour", count(*) AS reports
            FROM unique_reports GROUP BY 1, 2, 3, 4, 5
        ),
        zones AS (
            SELECT zone_latitude, zone_longitude, sum(reports) AS reports,
                   count(*) AS drone_hours
            FROM per_drone_hour GROUP BY 1, 2{rollups if rolled_up else ""}
        )
        SELECT zone_latitude, zone_longitude, CAST(sum(reports) AS BIGINT) AS reports,
               CAST(sum(drone_hours) AS BIGINT) AS drone_hours
        FROM zones
        GROUP BY 1, 2 ORDER BY reports DESC, 1, 2"""


def _top(column: str) -> Callable[[Options], str]:
    def build(options: Options) -> str:
        return f"""
            SELECT {column}, count(DISTINCT alert_id) AS alerts
            FROM alerts WHERE event = 'raised' AND {within("alerts")}
            GROUP BY 1 ORDER BY alerts DESC, 1 LIMIT {int(options.top)}"""

    return build


def _words(options: Options) -> str:
    # A report "with an alert" is one an alert event names (raising or updating), raised
    # from an hour before the report's hour to an hour after it (``rollups``). A report a
    # drone sent twice (a resend after a timeout) counts once. Each word is counted every
    # time it was heard; the rates are per report of each kind, so a word common
    # everywhere does not look alarming: compare the two rates. The hours wholly in the
    # window that have their rollups are read from them.
    before = f"INTERVAL {int(ALERTED_FROM.total_seconds() // 3600)} HOUR"
    after = f"INTERVAL {int(ALERTED_UNTIL.total_seconds() // 3600)} HOUR"
    return f"""
        WITH {_unique_reports(rolled_up=True)},
        alerted AS (
            SELECT DISTINCT r.report_id, r."date", r."hour"
            FROM unique_reports r JOIN alerts a ON a.report_id = r.report_id
            WHERE a."date" BETWEEN CAST($start - {before} AS DATE)
                               AND CAST($end + {after} AS DATE)
              AND a.raised_at >= date_trunc('hour', r."timestamp") - {before}
              AND a.raised_at < date_trunc('hour', r."timestamp") + {after}
        ),
        tagged AS (
            SELECT r.words, a.report_id IS NOT NULL AS alerting
            FROM unique_reports r LEFT JOIN alerted a
                ON a.report_id = r.report_id AND a."date" = r."date" AND a."hour" = r."hour"
        ),
        kinds AS (
            SELECT count(*) FILTER (WHERE alerting) AS alerting, count(*) AS reports
            FROM tagged
            UNION ALL
            SELECT sum(alerting_reports), sum(reports) FROM zone_counts {_ROLLED}
        ),
        totals AS (
            SELECT coalesce(sum(alerting), 0) AS with_alerts,
                   coalesce(sum(reports - alerting), 0) AS without_alerts
            FROM kinds
        ),
        heard AS (
            SELECT word, alerting, count(*) AS heard
            FROM (SELECT alerting, unnest(words) AS word FROM tagged) GROUP BY 1, 2
            UNION ALL
            SELECT word, alerting, heard FROM word_counts {_ROLLED}
        ),
        counted AS (
            SELECT word,
                   CAST(coalesce(sum(heard) FILTER (WHERE alerting), 0) AS BIGINT)
                       AS heard_with_alerts,
                   CAST(coalesce(sum(heard) FILTER (WHERE NOT alerting), 0) AS BIGINT)
                       AS heard_without_alerts
            FROM heard GROUP BY word
        )
        SELECT word, heard_with_alerts, heard_without_alerts,
               round(heard_with_alerts / greatest(t.with_alerts, 1), 4)
                   AS per_report_with_alerts,
               round(heard_without_alerts / greatest(t.without_alerts, 1), 4)
                   AS per_report_without_alerts
        FROM counted, totals t
        ORDER BY heard_with_alerts DESC, heard_without_alerts DESC, word
        LIMIT {int(options.top)}"""


def _reactions() -> str:
    # An alert's reaction time: from its raising to the first time an officer acted on it
    # (acknowledged, assigned or resolved it). Transitions are keyed (alert_id, seq): a
    # transition written twice counts once.
    return f"""
        raised AS (
            SELECT alert_id, any_value(raised_at) AS raised_at,
                   any_value(latitude) AS latitude, any_value(longitude) AS longitude
            FROM alerts WHERE event = 'raised' AND {within("alerts")}
            GROUP BY alert_id
        ),
        acted AS (
            SELECT alert_id, min("at") AS acted_at
            FROM (
                SELECT DISTINCT alert_id, seq, action, "at" FROM lifecycle
                -- Nobody acts on an alert before it is raised: older days are not read.
                WHERE "date" >= CAST($start AS DATE) AND "at" >= $start
            )
            WHERE action IN ('acknowledge', 'assign', 'resolve')
            GROUP BY alert_id
        ),
        reactions AS (
            SELECT r.*, date_diff('millisecond', r.raised_at, a.acted_at) / 1000 AS seconds
            FROM raised r LEFT JOIN acted a USING (alert_id)
        )"""


_REACTION_COLUMNS: Final = """
    count(*) AS alerts,
    count(seconds) AS acted_on,
    round(median(seconds), 1) AS median_seconds,
    round(quantile_cont(seconds, 0.9), 1) AS p90_seconds,
    round(max(seconds), 1) AS max_seconds"""


def _reaction_by_hour(_: Options) -> str:
    return f"""
        WITH {_reactions()}
        SELECT date_trunc('hour', raised_at) AS hour, {_REACTION_COLUMNS}
        FROM reactions GROUP BY 1 ORDER BY 1"""


def _reaction_by_zone(options: Options) -> str:
    return f"""
        WITH {_reactions()}
        SELECT {_zone(options)}, {_REACTION_COLUMNS}
        FROM reactions GROUP BY 1, 2 ORDER BY alerts DESC, 1, 2"""


STATISTICS: Final[Mapping[str, Statistic]] = {
    "alerts-per-hour": Statistic("Alerts raised in each hour.", _alerts_per_hour),
    "alerts-per-zone": Statistic(
        "Alerts raised in each zone of the grid: the heatmap's data.", _alerts_per_zone
    ),
    "top-drones": Statistic("The drones whose sightings raised the most alerts.", _top("drone_id")),
    "top-citizens": Statistic("The citizens most often flagged.", _top("citizen")),
    "words": Statistic(
        "The words most heard in reports with alerts, beside how often in reports without.",
        _words,
    ),
    "reaction-by-hour": Statistic(
        "Officers' reaction time (raised to first acted on), by hour of raising.",
        _reaction_by_hour,
    ),
    "reaction-by-zone": Statistic(
        "Officers' reaction time (raised to first acted on), by zone.", _reaction_by_zone
    ),
    "coverage": Statistic(
        "Reports and drone-hours (each hour's distinct drones, summed) in each zone of the grid.",
        _coverage,
    ),
}


def statistic_names() -> Sequence[str]:
    return tuple(STATISTICS)


def _statistic_job(
    handed: Handed,
    force_id: str,
    name: str,
    start: str,
    end: str,
    zone: float,
    top: int,
    memory: str,
) -> dict[str, Any]:
    """In the child: one statistic (``answer_isolated``)."""
    window = Window(datetime.fromisoformat(start), datetime.fromisoformat(end))
    # Our own SQL over a long window may need more than memory: it spills to a directory
    # of this child's, gone with it.
    with (
        tempfile.TemporaryDirectory(prefix="peaceland-statistic-") as spill,
        ForceLake(received(handed), force_id, memory_limit=memory, spill=Path(spill)) as lake,
    ):
        answer = lake.answer(name, window, Options(zone_degrees=zone, top=top))
    return {"columns": list(answer.columns), "rows": [list(row) for row in answer.rows]}


def answer_isolated(
    storage: LocalLake,
    force_id: str,
    name: str,
    window: Window,
    options: Options,
    *,
    seconds: float,
    memory_bytes: int,
) -> Answer:
    """A statistic answered in a process of its own, held to ``seconds`` and
    ``memory_bytes`` (``peaceland.analytics.isolated``); values come back as JSON values.
    IsolatedFailureError when it cannot be answered within them."""
    if name not in STATISTICS:
        raise UnknownStatisticError(name)
    memory = f"{max(memory_bytes // (1024 * 1024), 64)}MB"
    args = (
        hand(storage), validate_force_id(force_id), name, window.start.isoformat(),
        window.end.isoformat(), options.zone_degrees, options.top, memory,
    )  # fmt: skip
    answer = run_isolated(_statistic_job, args, Budget(seconds, memory_bytes))
    return Answer(name, tuple(answer["columns"]), tuple(tuple(row) for row in answer["rows"]))
