"""Reading a lake kept elsewhere through a snapshot on this disk (``mirror``), over pyarrow's
own local filesystem standing in for the store: the rules, fast. The real S3 server's
turn is ``test_object_store``."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from pyarrow.fs import LocalFileSystem

from peaceland.analytics.lake import ArrowStorage, LocalStorage
from peaceland.analytics.mirror import Mirror, Snapshot, hand, readable, received
from peaceland.analytics.stats import STATISTICS, ForceLake
from tests.analytics.test_stats import FORCE, WINDOW, write_history


def _store(tmp_path: Path) -> ArrowStorage:
    (tmp_path / "store").mkdir()
    return ArrowStorage(LocalFileSystem(), str(tmp_path / "store"), "s3://bucket/lake")


def test_statistics_over_a_snapshot_are_those_over_the_lake_itself(tmp_path: Path):
    store = _store(tmp_path)
    write_history(store)
    write_history(tmp_path / "local")
    snapshot = readable(store, FORCE, tmp_path / "mirror")
    assert isinstance(snapshot, Snapshot)
    with (
        ForceLake(snapshot, FORCE) as remote,
        ForceLake(LocalStorage(tmp_path / "local"), FORCE) as local,
    ):
        for name in STATISTICS:
            assert remote.answer(name, WINDOW).rows == local.answer(name, WINDOW).rows, name
    # A child process receives the snapshot as it was, listing included.
    assert received(hand(snapshot)) == snapshot


def test_a_file_the_store_deleted_is_never_read_and_its_copy_goes_after_the_linger(
    tmp_path: Path,
):
    store = _store(tmp_path)
    write_history(store)
    now = [1_000_000.0]
    mirror = Mirror(store, tmp_path / "mirror", linger=timedelta(minutes=15), clock=lambda: now[0])
    first = mirror.snapshot(FORCE)
    gone = next(f.path for f in first.files if "/reports/date=" in f.path)
    with ForceLake(first, FORCE) as lake:
        before = lake.connection.execute("SELECT count(*) FROM reports").fetchone()
    store.delete(gone)
    second = mirror.snapshot(FORCE)
    assert gone not in {f.path for f in second.files}
    assert second.get(gone) is None
    assert (tmp_path / "mirror" / gone).exists(), "a question under way may still read it"
    with ForceLake(second, FORCE) as lake:
        after = lake.connection.execute("SELECT count(*) FROM reports").fetchone()
    assert before is not None
    assert after is not None
    assert after[0] < before[0]
    now[0] += 15 * 60 - 1
    mirror.snapshot(FORCE)
    assert (tmp_path / "mirror" / gone).exists()
    now[0] += 2
    mirror.snapshot(FORCE)
    assert not (tmp_path / "mirror" / gone).exists()


def test_a_copy_is_made_once_and_a_changed_state_is_copied_again(tmp_path: Path):
    store = _store(tmp_path)
    write_history(store)
    mirror = Mirror(store, tmp_path / "mirror")
    first = mirror.snapshot(FORCE)
    parquet = next(f.path for f in first.files if f.path.endswith(".parquet"))
    state = next(f.path for f in first.files if f.path.endswith(".json"))
    copied = (tmp_path / "mirror" / parquet).stat().st_ino
    store.put(state, b'{"done": 99, "writing": [], "owner": "x"}')
    mirror.snapshot(FORCE)
    assert (tmp_path / "mirror" / parquet).stat().st_ino == copied
    assert (tmp_path / "mirror" / state).read_bytes() == store.get(state)


def test_a_snapshot_holds_its_own_force_only_and_writes_nothing(tmp_path: Path):
    store = _store(tmp_path)
    write_history(store)
    write_history(store, "other-force")
    snapshot = Mirror(store, tmp_path / "mirror").snapshot("other-force")
    assert snapshot.files
    assert all(f.path.startswith("other-force/") for f in snapshot.files)
    assert not (tmp_path / "mirror" / FORCE).exists()
    with pytest.raises(PermissionError, match="read-only"):
        snapshot.put("other-force/x.parquet", b"")
    with pytest.raises(ValueError, match="invalid police force id"):
        Mirror(store, tmp_path / "mirror").snapshot("../other-force")
