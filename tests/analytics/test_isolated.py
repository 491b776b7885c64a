"""A job in a process of its own never outlives the process waiting for it."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

from peaceland.analytics.isolated import Budget, run_isolated


def _sleep_and_say(where: str) -> dict[str, Any]:
    Path(where).write_text(str(os.getpid()))
    time.sleep(120)
    return {}


def _wait_for_job(where: str) -> None:
    run_isolated(_sleep_and_say, (where,), Budget(seconds=120, memory_bytes=64 * 1024 * 1024))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.exists() and "zombie" in status.read_text())


def test_a_job_dies_with_the_process_waiting_for_it(tmp_path: Path):
    said = tmp_path / "pid"
    waiting = multiprocessing.get_context("spawn").Process(target=_wait_for_job, args=(str(said),))
    waiting.start()
    deadline = time.monotonic() + 60
    while not said.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    job = int(said.read_text())
    assert _alive(job)
    os.kill(waiting.pid or 0, signal.SIGKILL)  # the consumer killed, say by its pod's limit
    waiting.join(10)
    deadline = time.monotonic() + 10
    while _alive(job) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(job)
