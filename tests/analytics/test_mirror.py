"""Reading a lake kept elsewhere through a snapshot on this disk (``mirror``), over pyarrow's
own local filesystem standing in for the store: the rules, fast. The real S3 server's
turn is ``test_object_store``."""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

import pytest
from pyarrow.fs import LocalFileSystem, PyFileSystem

from peaceland.analytics.lake import ArrowStorage, LocalStorage, open_storage
from peaceland.analytics.mirror import Mirror, Snapshot, hand, lake_file, readable, received
from peaceland.analytics.stats import STATISTICS, ForceLake
from tests.analytics.test_stats import FORCE, WINDOW, write_history
from tests.lake_storage import FlatStore


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


def _flat(tmp_path: Path) -> tuple[ArrowStorage, FlatStore]:
    held = FlatStore()
    return ArrowStorage(PyFileSystem(held), "bucket/lake", "s3://bucket/lake"), held


def test_names_a_store_lists_outside_a_forces_lake_are_never_copied_nor_read(tmp_path: Path):
    store, held = _flat(tmp_path)
    write_history(store, "victim")
    mirror = Mirror(store, tmp_path / "mirror")
    victim = mirror.snapshot("victim")
    theirs = next(f for f in victim.files if "/reports/date=" in f.path)
    hour = "/".join(theirs.path.split("/")[2:4])
    before = (tmp_path / "mirror" / theirs.path).read_bytes()
    # What a force's writer could put under its own prefix, to climb out of it.
    held.objects["bucket/lake/stats-force/_lake/../../../escaped.txt"] = b"outside"
    held.objects[f"bucket/lake/stats-force/reports/{hour}/../../../../{theirs.path}"] = (
        b"\0" * theirs.size
    )
    held.objects["bucket/lake/stats-force/reports/" + "x" * 230 + ".parquet"] = b"long"
    held.objects["bucket/lake/stats-force/backup.tar"] = b"not the lake's"
    held.objects["bucket/lake/stats-force/reports/.hidden.parquet"] = b"hidden"
    write_history(store)
    ours = mirror.snapshot(FORCE)
    assert not (tmp_path / "escaped.txt").exists()
    assert not list(tmp_path.rglob("escaped.txt"))
    assert (tmp_path / "mirror" / theirs.path).read_bytes() == before
    assert all(".." not in f.path and "x" * 200 not in f.path for f in ours.files)
    assert not any(f.path.endswith(("backup.tar", ".hidden.parquet")) for f in ours.files)
    with ForceLake(ours, FORCE) as lake:
        assert lake.answer("top-drones", WINDOW).rows  # the force's own lake still answers
    assert lake_file(FORCE, f"{FORCE}/reports/date=2026-11-30/hour=09/p0-1-2-abc.parquet")
    assert lake_file(FORCE, f"{FORCE}/_lake/reports/p0.json")
    for planted in (
        f"{FORCE}/reports/date=2026-11-30/../../victim/x.parquet",
        # A folder the engines would read as a partition: every question would fail.
        f"{FORCE}/alerts/date=2026-11-30/hour=20/extra=1/x.parquet",
        f"{FORCE}/reports/date=2026-11-30/hour=09/" + "/".join(["a" * 200] * 21) + ".parquet",
        f"{FORCE}/_lake/reports/notes.json",
        "victim/reports/date=2026-11-30/hour=09/x.parquet",
    ):
        assert not lake_file(FORCE, planted), planted


def test_a_copy_shorter_than_the_store_listed_fails_the_snapshot(tmp_path: Path):
    store, held = _flat(tmp_path)
    write_history(store)
    cut = next(k for k in held.objects if k.endswith(".parquet"))
    held.short.add(cut)
    with pytest.raises(OSError, match="bytes copied, the store listed"):
        Mirror(store, tmp_path / "mirror").snapshot(FORCE)
    assert not (tmp_path / "mirror" / cut.removeprefix("bucket/lake/")).exists()
    held.short.clear()
    assert Mirror(store, tmp_path / "mirror").snapshot(FORCE).files


def test_what_a_killed_copy_left_is_removed_and_the_folder_is_its_users_alone(tmp_path: Path):
    store, _ = _flat(tmp_path)
    write_history(store)
    mirror = Mirror(store, tmp_path / "mirror")
    mirror.snapshot(FORCE)
    partial = tmp_path / "mirror" / FORCE / "reports" / ".c-x.parquet.0123.tmp"
    partial.write_bytes(b"half")
    (tmp_path / "mirror").chmod(0o755)
    mirror.snapshot(FORCE)
    assert not partial.exists()
    assert (tmp_path / "mirror").stat().st_mode & 0o777 == 0o700
    os.chown(tmp_path / "mirror", 65534, 65534)  # another user's folder
    with pytest.raises(PermissionError, match="someone else"):
        mirror.snapshot(FORCE)
    # A link, where the folder or a force's folder should be: refused, nothing written.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "linked").symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="link"):
        Mirror(store, tmp_path / "linked").snapshot(FORCE)
    (tmp_path / "own").mkdir(mode=0o700)
    (tmp_path / "own" / FORCE).symlink_to(elsewhere)
    with pytest.raises(PermissionError, match="link"):
        Mirror(store, tmp_path / "own").snapshot(FORCE)
    assert not any(elsewhere.iterdir())


def test_keys_never_travel_in_a_lake_uri():
    with pytest.raises(ValueError, match="may not hold keys") as refused:
        open_storage("s3://AKID:the-secret@bucket/lake")
    assert "the-secret" not in str(refused.value)
    with pytest.raises(ValueError, match="not secret_key") as refused:
        open_storage("s3://bucket/lake?secret_key=the-secret", s3_keys=("a", "b"))
    assert "the-secret" not in str(refused.value)
