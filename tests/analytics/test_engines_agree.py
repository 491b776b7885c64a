"""Every predefined statistic gives the same answer on DuckDB and on Spark, over the same
files (Spark in local mode: a real JVM, started once for the module)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession

from peaceland.analytics.compaction import Compactor
from peaceland.analytics.lake import LocalStorage
from peaceland.analytics.spark import SparkForceLake, local_spark, to_spark_sql
from peaceland.analytics.stats import STATISTICS, ForceLake, Options, Window
from tests.analytics.test_rollups import WINDOWS
from tests.analytics.test_stats import FORCE, WINDOW, write_history

pytestmark = pytest.mark.spark


@pytest.fixture(scope="module")
def spark() -> Iterator[SparkSession]:
    session = local_spark()
    yield session
    session.stop()


@pytest.fixture(scope="module")
def lake_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lake")
    write_history(root)
    return root


@pytest.mark.parametrize("name", list(STATISTICS))
@pytest.mark.parametrize(
    ("window", "options"),
    [
        (WINDOW, Options()),
        (Window(WINDOW.start - timedelta(hours=2), WINDOW.end), Options(zone_degrees=0.05, top=3)),
    ],
)
def test_both_engines_agree(
    spark: SparkSession, lake_root: Path, name: str, window: Window, options: Options
):
    storage = LocalStorage(lake_root)
    with ForceLake(storage, FORCE) as duck:
        expected = duck.answer(name, window, options)
    answer = SparkForceLake(spark, storage, FORCE).answer(name, window, options)
    assert answer.columns == expected.columns
    assert answer.rows == expected.rows
    assert expected.rows, "a statistic over an empty answer proves nothing"


@pytest.fixture(scope="module")
def rolled_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The same history, compacted and rolled up (``rollups``)."""
    root = tmp_path_factory.mktemp("rolled")
    write_history(root)
    compactor = Compactor(
        LocalStorage(root), FORCE, fence=lambda: None, clock=lambda: time.time() + 7200
    )
    assert compactor.run().rolled_up
    return root


@pytest.mark.parametrize("name", ["coverage", "words"])
@pytest.mark.parametrize("window", WINDOWS[:3])
def test_both_engines_agree_over_rollups(
    spark: SparkSession, rolled_root: Path, name: str, window: Window
):
    storage = LocalStorage(rolled_root)
    with ForceLake(storage, FORCE) as duck:
        expected = duck.answer(name, window)
    answer = SparkForceLake(spark, storage, FORCE).answer(name, window)
    assert answer.columns == expected.columns
    assert answer.rows == expected.rows
    assert expected.rows


def test_a_force_with_nothing_in_the_lake_is_empty_on_spark_too(
    spark: SparkSession, lake_root: Path
):
    lake = SparkForceLake(spark, LocalStorage(lake_root), "another-force")
    for name in STATISTICS:
        assert lake.answer(name, WINDOW).rows == ()


def test_exact_quantiles_stay_exact_in_spark():
    sql = to_spark_sql("SELECT quantile_cont(x, 0.9) AS q FROM t")
    assert sql.lower() == "select percentile(x, 0.9) as q from t"
