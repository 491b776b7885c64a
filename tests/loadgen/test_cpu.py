"""The CPU a run spent, read from /proc for each process."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from peaceland.loadgen.cpu import CpuMeter, cpu_seconds


def _burn(seconds: float) -> float:
    began = time.process_time()
    while time.process_time() - began < seconds:
        pass
    return time.process_time() - began


def test_a_process_is_charged_the_cpu_it_spent() -> None:
    meter = CpuMeter({"me": os.getpid()})
    meter.start()
    spent = _burn(0.3)
    figures = meter.stop(reports=100)
    # /proc counts in clock ticks (10 ms here): the meter agrees with Python's own count.
    assert abs(figures["me"]["seconds"] - spent) <= 0.05
    assert figures["me"]["ms_per_report"] == round(figures["me"]["seconds"] * 10, 3)
    assert figures["all"]["seconds"] == figures["me"]["seconds"]


def test_a_process_gone_before_the_end_is_left_out_not_guessed() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        meter = CpuMeter({"child": child.pid, "me": os.getpid()})
        meter.start()
    finally:
        child.kill()
        child.wait()
    figures = meter.stop(reports=1)
    assert set(figures) == {"me", "all"}
    assert cpu_seconds(child.pid) is None
