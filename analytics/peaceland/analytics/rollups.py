"""Per-hour rollups of a force's compacted reports: what ``coverage`` and ``words`` read
instead of every report of an hour wholly inside their window.

A report is counted by those two statistics through a handful of figures: its zone, its
drone, its words, and whether an alert named it. A compacted hour of reports (one file,
each report once) is summed up, once, into two small files:

- ``zone_counts``: per zone of the ``ROLLUP_GRID``, its reports, those with an alert, and
  its drones (distinct: summed over hours, the zone's drone-hours);
- ``word_counts``: times each word was heard, in reports with an alert and without.

A report is *with an alert* when an alert event names it (its ``report_id``) raised from
one hour before the start of the report's hour to one hour after its end
(``ALERTED_FROM``, ``ALERTED_UNTIL``): the alert events of three hours, whatever the window
asked, so that a rollup made once holds for every window containing its hour.

A rollup is only a faster way to the same answer, never another one: its name is the key of
what it was made from (``rollup_key``: the compacted reports file, and the names of the
alert files of its three hours). A reader takes it only if that key is the one of the files
it sees now; a late alert file or a reports hour compacted again make it stale, and the
hour is read from its reports until the compactor has made its rollup again.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal, get_args

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from peaceland.analytics.lake import SCHEMAS, TABLES, Storage, Table, hour_of, table_dir
from peaceland.tenants.forces import validate_force_id

Kind = Literal["zone_counts", "word_counts"]
KINDS: Final[tuple[Kind, ...]] = get_args(Kind)

#: The zone grid of ``zone_counts`` (degrees): the statistics' default.
ROLLUP_GRID: Final = 0.01
#: A report is with an alert when an alert naming it was raised in
#: [its hour's start - ALERTED_FROM, its hour's start + ALERTED_UNTIL).
ALERTED_FROM: Final = timedelta(hours=1)
ALERTED_UNTIL: Final = timedelta(hours=2)
#: The rollups' format, part of their key: rollups of an older format are stale, made
#: again by the next compaction runs, never read.
ROLLUP_FORMAT: Final = 1
#: How a compacted file's name starts.
COMPACTED: Final = "c-"

_TIME = pa.timestamp("ms")
ROLLUP_SCHEMAS: Final[Mapping[Kind, pa.Schema]] = {
    "zone_counts": pa.schema(
        [
            ("hour_start", _TIME),
            ("zone_latitude", pa.float64()),
            ("zone_longitude", pa.float64()),
            ("reports", pa.int64()),
            ("alerting_reports", pa.int64()),
            ("drones", pa.int64()),
        ]
    ),
    "word_counts": pa.schema(
        [
            ("hour_start", _TIME),
            ("word", pa.string()),
            ("alerting", pa.bool_()),
            ("heard", pa.int64()),
        ]
    ),
}


def zone_sql(degrees: float, alias: str = "") -> str:
    """The zone (south-west corner of its grid cell) of a row's ``latitude, longitude``,
    as the columns ``zone_latitude, zone_longitude``: one expression for the statistics
    and for the rollups, so that both put a report in the same cell."""
    prefix = f"{alias}." if alias else ""
    g = repr(float(degrees))
    return (
        f"round(floor({prefix}latitude / {g}) * {g}, 6) AS zone_latitude, "
        f"round(floor({prefix}longitude / {g}) * {g}, 6) AS zone_longitude"
    )


def rollup_dir(force_id: str, kind: Kind) -> str:
    """The directory of one force's rollups of ``kind``, relative to the lake's root."""
    return f"{validate_force_id(force_id)}/_rollups/{kind}"


def alert_hours(hour: datetime) -> tuple[datetime, ...]:
    """The hours of the alert events that may say whether a report of ``hour`` is with an
    alert."""
    first = hour - ALERTED_FROM
    count = int((ALERTED_FROM + ALERTED_UNTIL) / timedelta(hours=1))
    return tuple(first + timedelta(hours=n) for n in range(count))


def rollup_key(reports_file: str, alert_files: Iterable[str], made_as: str = "") -> str:
    """What a rollup was made from, as its file's name: the rollups' format (``made_as``:
    ``_format()``, computed once by a caller keying many hours), the compacted reports
    file's token and a digest of the alert files' names (their paths relative to the
    lake's root)."""
    token = reports_file.rsplit("/", 1)[-1].removeprefix(COMPACTED).removesuffix(".parquet")
    digest = hashlib.sha256("\n".join(sorted(alert_files)).encode()).hexdigest()[:16]
    return f"f{made_as or _format()}-{token}-{digest}"


def _format() -> str:
    """``ROLLUP_FORMAT`` and a digest of what makes a rollup what it is (its grid, what
    "with an alert" means, its columns and its SQL): a change to any makes every rollup
    stale, even if the format number was not bumped."""
    made_of = repr(
        (
            ROLLUP_GRID,
            ALERTED_FROM,
            ALERTED_UNTIL,
            {kind: str(schema) for kind, schema in ROLLUP_SCHEMAS.items()},
            _TAGGED,
            _ROLLUPS,
        )
    )
    return f"{ROLLUP_FORMAT}.{hashlib.sha256(made_of.encode()).hexdigest()[:8]}"


@dataclass(frozen=True, slots=True)
class Reading:
    """What a session of a force's lake reads, view by view: each table's live files, its
    reports split three ways (compacted hours with a rollup that holds, other compacted
    hours, the rest), and the rollups that hold."""

    files: Mapping[str, list[str]]


def _source(view: str) -> tuple[Kind, None] | tuple[None, Table]:
    """The rollup or the table whose files a session's view (``Reading.files``' keys)
    reads."""
    for kind in KINDS:
        if view == kind:
            return kind, None
    for table in TABLES:
        if view == table or (table == "reports" and view.startswith("_reports_")):
            return None, table
    raise ValueError(f"no view called {view!r}")


def schema_of(view: str) -> pa.Schema:
    """The columns of a session's view, partitions aside."""
    kind, table = _source(view)
    return ROLLUP_SCHEMAS[kind] if kind is not None else SCHEMAS[table]  # type: ignore[index]


def base_of(force_id: str, view: str) -> str:
    """The directory a view's files are under (their Hive partitions start there)."""
    kind, table = _source(view)
    return rollup_dir(force_id, kind) if kind is not None else table_dir(force_id, table)  # type: ignore[arg-type]


def split_compacted(files: Sequence[str]) -> tuple[list[str], list[str]]:
    """Live ``files`` of a table as those whose rows are each there once (the hours that
    are one compacted file) and the others (hours a flush wrote since, or not compacted
    yet), where a report a drone resent may be twice. A resent report has its first
    sending's time, so it always lands in the same hour."""
    by_hour: dict[str, list[str]] = defaultdict(list)
    for path in files:
        by_hour[path.rsplit("/", 1)[0]].append(path)
    once: list[str] = []
    others: list[str] = []
    for hour_files in by_hour.values():
        alone = len(hour_files) == 1 and hour_files[0].rsplit("/", 1)[1].startswith(COMPACTED)
        (once if alone else others).extend(hour_files)
    return sorted(once), sorted(others)


def by_hour(paths: Iterable[str]) -> dict[datetime, list[str]]:
    """``paths`` by the hour their partition holds (those in no hour's directory left out)."""
    found: dict[datetime, list[str]] = defaultdict(list)
    for path in paths:
        hour = hour_of(path)
        if hour is not None:
            found[hour].append(path)
    return found


def expected_keys(
    compacted_reports: Sequence[str], alerts: Mapping[datetime, list[str]]
) -> dict[datetime, tuple[str, str]]:
    """For each compacted reports hour: (its file, the key a rollup of it must have now),
    given the live alert files ``by_hour``."""
    made_as = _format()
    keys: dict[datetime, tuple[str, str]] = {}
    for hour, [path] in by_hour(compacted_reports).items():  # one file an hour, compacted
        seen = [f for h in alert_hours(hour) for f in alerts.get(h, [])]
        keys[hour] = (path, rollup_key(path, seen, made_as))
    return keys


def sort_rollups(
    storage: Storage, force_id: str, keys: Mapping[datetime, tuple[str, str]]
) -> tuple[dict[datetime, dict[Kind, str]], list[str]]:
    """The rollups listed, sorted: the hours whose every rollup holds (its name is the key
    of the files now), with those rollups' paths; and the stale rollups (another name, or
    an hour without a compacted file of reports). A rollup holding alone (the other not
    yet published) is neither."""
    found: dict[datetime, dict[Kind, str]] = defaultdict(dict)
    stale: list[str] = []
    for kind in KINDS:
        for listed in storage.list(rollup_dir(force_id, kind), times=False):
            hour = hour_of(listed.path)
            name = listed.path.rsplit("/", 1)[1]
            if hour is not None and hour in keys and name == f"{keys[hour][1]}.parquet":
                found[hour][kind] = listed.path
            else:
                stale.append(listed.path)
    holding = {hour: paths for hour, paths in found.items() if len(paths) == len(KINDS)}
    return holding, stale


def reading(storage: Storage, force_id: str, live: Mapping[Table, list[str]]) -> Reading:
    """How a session reads a force's lake, from each table's live files
    (``compaction.live_files``)."""
    compacted, others = split_compacted(live["reports"])
    keys = expected_keys(compacted, by_hour(live["alerts"]))
    rolled, _ = sort_rollups(storage, force_id, keys)
    files: dict[str, list[str]] = {table: list(live[table]) for table in TABLES}
    files["_reports_rolled"] = sorted(keys[hour][0] for hour in rolled)
    files["_reports_once"] = sorted(path for hour, (path, _) in keys.items() if hour not in rolled)
    files["_reports_others"] = others
    for kind in KINDS:
        files[kind] = sorted(paths[kind] for paths in rolled.values())
    return Reading(files)


#: Each report of the hour, with what the rollups count it by.
_TAGGED: Final = f"""
    CREATE TEMPORARY TABLE tagged AS
    SELECT drone_id, {zone_sql(ROLLUP_GRID)}, words,
           report_id IN (
               SELECT report_id FROM alerts
               WHERE report_id IS NOT NULL
                 AND raised_at >= $from AND raised_at < $until) AS alerting
    FROM reports"""

#: Each rollup, from ``tagged``.
_ROLLUPS: Final[Mapping[Kind, str]] = {
    "zone_counts": """
        SELECT $hour AS hour_start, zone_latitude, zone_longitude, count(*) AS reports,
               count(*) FILTER (WHERE alerting) AS alerting_reports,
               count(DISTINCT drone_id) AS drones
        FROM tagged GROUP BY ALL ORDER BY ALL""",
    "word_counts": """
        SELECT $hour AS hour_start, word, alerting, count(*) AS heard
        FROM (SELECT alerting, unnest(words) AS word FROM tagged)
        GROUP BY ALL ORDER BY ALL""",
}


def _listed(files: Sequence[str]) -> str:
    return ", ".join("'" + f.replace("'", "''") + "'" for f in files)


def roll_up_hour(
    reports_file: str,
    alert_files: list[str],
    hour: datetime,
    outs: Mapping[Kind, str],
    memory: str,
    spill: str,
) -> dict[str, int]:
    """Both rollups of one compacted hour of reports (``reports_file``, local), given the
    alert files of its ``alert_hours``, written at ``outs[kind]``; rows of each. DuckDB
    spills what exceeds ``memory`` to ``spill``."""
    connection = duckdb.connect(
        config={"threads": 1, "memory_limit": memory, "temp_directory": spill}
    )
    try:
        connection.execute(
            "CREATE TEMPORARY VIEW reports AS SELECT * FROM read_parquet("
            f"[{_listed([reports_file])}], hive_partitioning = false)"
        )
        if alert_files:
            connection.execute(
                "CREATE TEMPORARY VIEW alerts AS SELECT report_id, raised_at FROM "
                f"read_parquet([{_listed(alert_files)}], hive_partitioning = false)"
            )
        else:
            connection.execute(
                "CREATE TEMPORARY VIEW alerts AS SELECT NULL::VARCHAR AS report_id, "
                "NULL::TIMESTAMP AS raised_at WHERE false"
            )
        connection.execute(_TAGGED, {"from": hour - ALERTED_FROM, "until": hour + ALERTED_UNTIL})
        rows: dict[str, int] = {}
        for kind, sql in _ROLLUPS.items():
            table = connection.sql(sql, params={"hour": hour}).to_arrow_table()
            table = table.cast(ROLLUP_SCHEMAS[kind])
            pq.write_table(table, outs[kind], compression="zstd")
            rows[kind] = table.num_rows
        return rows
    finally:
        connection.close()
