"""Where a run's CPU went: each process's user and system time over the run (Linux /proc).

On one machine that carries every server and service, the question a benchmark must answer
is not only how fast, but who spent the cores: a lever that makes the archiver cheaper is
worth what the archiver cost per report.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path


def cpu_seconds(pid: int) -> float | None:
    """The user and system CPU time process ``pid`` has used so far, or None when it is
    gone (or this is not Linux)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command's name (in parentheses, which may hold spaces): the third
    # field of the line is the first here; utime and stime are the 14th and 15th.
    fields = stat.rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """The CPU time each named process spends between ``start`` and ``stop``."""

    pids: Mapping[str, int]
    _started: dict[str, float] = field(default_factory=dict)

    def start(self) -> None:
        self._started = {
            name: seconds
            for name, pid in self.pids.items()
            if (seconds := cpu_seconds(pid)) is not None
        }

    def stop(self, reports: int) -> dict[str, dict[str, float]]:
        """Seconds of CPU of each process still running, and milliseconds per report; a
        process that stopped or restarted in between is left out rather than guessed."""
        spent: dict[str, dict[str, float]] = {}
        for name, began in self._started.items():
            now = cpu_seconds(self.pids[name])
            if now is None or now < began:
                continue
            spent[name] = {
                "seconds": round(now - began, 2),
                "ms_per_report": round((now - began) * 1000 / max(reports, 1), 3),
            }
        total = sum(figures["seconds"] for figures in spent.values())
        spent["all"] = {
            "seconds": round(total, 2),
            "ms_per_report": round(total * 1000 / max(reports, 1), 3),
        }
        return spent
