"""The analytics routes' seats and pace, without a server: what keeps one force or one
person from taking every analyst's turn."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyarrow.fs import LocalFileSystem

from peaceland.analytics.lake import ArrowStorage
from peaceland.api.problems import Problem
from peaceland.api.routes.analytics import Analytics
from peaceland.api.settings import ApiSettings


def _analytics(**fields: object) -> Analytics:
    settings = ApiSettings(database_url="postgresql://x@127.0.0.1/x", **fields)  # type: ignore[arg-type]
    return Analytics(None, settings)


def test_one_force_takes_its_own_seats_only_and_the_process_its_own():
    analytics = _analytics(analytics_concurrency=2, analytics_per_force=1)
    with analytics.seat("a"):
        with pytest.raises(Problem) as refused, analytics.seat("a"):
            pass
        assert refused.value.status == 429
        with analytics.seat("b"), pytest.raises(Problem), analytics.seat("c"):
            pass
    # Every seat is given back, even by a question that failed.
    with pytest.raises(RuntimeError), analytics.seat("a"):
        raise RuntimeError("the question failed")
    with analytics.seat("a"), analytics.seat("b"):
        pass


def test_a_person_asks_at_most_so_many_questions_a_minute():
    analytics = _analytics(analytics_per_minute=3)
    for _ in range(3):
        analytics.pace("ana@force.test")
    with pytest.raises(Problem) as refused:
        analytics.pace("ana@force.test")
    assert refused.value.status == 429
    assert "Retry-After" in (refused.value.headers or {})
    analytics.pace("someone-else@force.test")


def test_without_a_lake_or_with_a_store_that_fails_the_routes_say_so(tmp_path: Path):
    with pytest.raises(Problem, match="no analytics lake"):
        _analytics().lake("avon")
    # A store whose listing fails (the force's reports folder is a file): 503, with the
    # reason in the logs only (the store's words name its buckets and paths).
    (tmp_path / "avon").mkdir()
    (tmp_path / "avon" / "reports").write_text("")
    failing = ArrowStorage(LocalFileSystem(), str(tmp_path), "s3://b/lake")
    settings = ApiSettings(
        database_url="postgresql://x@127.0.0.1/x", lake_mirror_dir=tmp_path / "mirror"
    )
    with pytest.raises(Problem, match="cannot be read now") as refused:
        Analytics(failing, settings).lake("avon")
    assert refused.value.status == 503
    assert str(tmp_path) not in str(refused.value)


def test_a_forces_questions_share_a_snapshot_for_a_while_and_errors_hide_our_folders(
    tmp_path: Path,
):
    (tmp_path / "store").mkdir()
    store = ArrowStorage(LocalFileSystem(), str(tmp_path / "store"), "s3://b/lake")
    settings = ApiSettings(
        database_url="postgresql://x@127.0.0.1/x", lake_mirror_dir=tmp_path / "mirror"
    )
    analytics = Analytics(store, settings)
    first = analytics.lake("avon")
    assert analytics.lake("avon") is first
    assert analytics.lake("bath") is not first
    said = f"IO Error: No files found that match {tmp_path / 'mirror'}/avon/reports/x.parquet"
    assert str(tmp_path) not in analytics.hidden(said)
    assert "<lake>/avon/reports/x.parquet" in analytics.hidden(said)
