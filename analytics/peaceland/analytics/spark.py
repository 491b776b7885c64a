"""The same statistics on Apache Spark, over the very same files: for a force that outgrows
one machine (``local[*]`` in tests, a cluster's URL in production).

Each statistic is written once, in DuckDB's dialect (``peaceland.analytics.stats``), and
translated to Spark SQL by sqlglot; the one translation sqlglot makes approximate
(``quantile_cont`` becomes ``percentile_approx``) is made exact (``percentile``) here, so
both engines give the same figures, which the tests check statistic by statistic.

Each :class:`SparkForceLake` is its own Spark session (``newSession``: shared executors,
separate temporary views), whose views see one force's files only.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import sqlglot
from pyspark.sql import DataFrame, SparkSession
from sqlglot import exp

from peaceland.analytics.compaction import reading_of
from peaceland.analytics.lake import Storage
from peaceland.analytics.rollups import base_of
from peaceland.analytics.stats import (
    STATISTICS,
    Answer,
    Options,
    UnknownStatisticError,
    Window,
    no_rows,
)
from peaceland.tenants.forces import validate_force_id


def local_spark(threads: int = 2, memory: str = "1g") -> SparkSession:
    """A Spark of this machine (``local[threads]``), with times in UTC and no web UI."""
    spark = (
        SparkSession.builder.master(f"local[{threads}]")
        .appName("peaceland-analytics")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.driver.memory", memory)
        .config("spark.sql.shuffle.partitions", str(threads * 2))
        .getOrCreate()
    )
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def to_spark_sql(duckdb_sql: str) -> str:
    """A statistic's DuckDB SQL in Spark's dialect, exact quantiles kept exact."""

    def exact(node: exp.Expression) -> exp.Expression:
        if isinstance(node, exp.PercentileCont):
            return exp.Anonymous(this="percentile", expressions=[node.this, node.expression])
        return node

    tree = sqlglot.parse_one(duckdb_sql, read="duckdb").transform(exact)
    return tree.sql(dialect="spark")


def _plain(value: Any) -> Any:
    """Spark's decimals as floats, as DuckDB answers them."""
    return float(value) if isinstance(value, Decimal) else value


class SparkForceLake:
    """One force's tables in the lake, as views of a Spark session of their own."""

    def __init__(self, spark: SparkSession, storage: Storage, force_id: str) -> None:
        self.force_id = validate_force_id(force_id)
        self.session = spark.newSession()
        # The files by name, as DuckDB's views take them (``rollups.Reading``): those a
        # compaction replaced are left out while they linger.
        plan = reading_of(storage, self.force_id)
        for view, files in plan.files.items():
            where = storage.locate(base_of(self.force_id, view))
            self._frame(storage, where, view, files).createOrReplaceTempView(view)

    def _frame(self, storage: Storage, where: str, view: str, files: list[str]) -> DataFrame:
        if files:
            located = [storage.locate(f) for f in files]
            return self.session.read.option("basePath", where).parquet(*located)
        return self.session.createDataFrame(no_rows(view))

    def answer(self, name: str, window: Window, options: Options | None = None) -> Answer:
        statistic = STATISTICS.get(name)
        if statistic is None:
            raise UnknownStatisticError(name)
        sql, parameters = statistic.sql(window, options or Options())
        frame = self.session.sql(to_spark_sql(sql), args=parameters)
        rows = frame.collect()
        return Answer(
            name,
            tuple(frame.columns),
            tuple(tuple(_plain(v) for v in row) for row in rows),
        )
