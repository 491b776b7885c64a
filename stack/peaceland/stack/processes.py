"""Starting server processes in the background and stopping exactly those, by pid.

A pid file holds the pid and the process's start time (from /proc), so that a pid reused
by the system after our server died is never mistaken for ours, and ``down`` never kills a
stranger.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import pwd
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Tracked:
    pid: int
    start_time: int


def _start_time(pid: int) -> int | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22 (starttime) counted after the ")" that ends the command name.
    fields = stat[stat.rindex(")") + 2 :].split()
    return int(fields[19])


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat[stat.rindex(")") + 2] == "Z"


@contextlib.contextmanager
def _locked(pid_file: Path) -> Iterator[None]:
    """Hold the pid file's lock: recording a process and forgetting one never interleave."""
    pid_file.parent.mkdir(parents=True, exist_ok=True)
    with pid_file.with_name(pid_file.name + ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def track(pid_file: Path, pid: int) -> None:
    """Remember ``pid`` as ours in ``pid_file``."""
    start = _start_time(pid)
    if start is None:
        raise ProcessLookupError(pid)
    with _locked(pid_file):
        pid_file.write_text(json.dumps({"pid": pid, "start_time": start}))


def tracked(pid_file: Path) -> Tracked | None:
    """The process recorded in ``pid_file`` if it is still the same process and alive."""
    recorded = _recorded(pid_file)
    if recorded is None or not alive(recorded):
        return None
    return recorded


# Runs the server in the background with its output appended to the log ($0), prints its pid
# and exits: the server is re-parented to init, never our child, so it outlives us cleanly
# and leaves no zombie behind when it stops.
_LAUNCHER = 'exec </dev/null; "$@" >>"$0" 2>&1 & echo $!'


def spawn(
    argv: list[str],
    *,
    log_file: Path,
    pid_file: Path,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    user: str | None = None,
) -> int:
    """Start ``argv`` detached from us (own session), output appended to ``log_file``.

    With ``user``, the process runs as that user (and its primary group), which also owns
    the log file.
    """
    log_file.parent.mkdir(parents=True, exist_ok=True)
    log_file.touch()
    if user:
        owner = pwd.getpwnam(user)
        os.chown(log_file, owner.pw_uid, owner.pw_gid)
    launched = subprocess.run(
        ["/bin/sh", "-c", _LAUNCHER, str(log_file), *argv],
        capture_output=True,
        text=True,
        check=False,
        start_new_session=True,
        env=env,
        cwd=cwd,
        user=user,
        group=_primary_group(user) if user else None,
        extra_groups=[] if user else None,
        timeout=30,
    )
    if launched.returncode != 0 or not launched.stdout.strip().isdigit():
        raise OSError(f"could not launch {argv[0]}: {launched.stderr.strip()}")
    pid = int(launched.stdout.strip())
    track(pid_file, pid)
    return pid


def _primary_group(user: str) -> int:
    return pwd.getpwnam(user).pw_gid


def alive(proc: Tracked) -> bool:
    """Whether ``proc`` is still that very process (not a reused pid), and not a zombie."""
    return _start_time(proc.pid) == proc.start_time and not _is_zombie(proc.pid)


def stop(pid_file: Path, *, sig: signal.Signals = signal.SIGTERM, timeout: float = 60.0) -> bool:
    """Stop the process recorded in ``pid_file``; returns whether one was running.

    Sends ``sig`` to the process, then SIGKILL to it and its process group if it is still
    alive after ``timeout`` seconds. Waits for that process, the one recorded when called:
    a supervisor may start a successor under the same pid file meanwhile, which is left
    alone, and so is the pid file then (checked and removed under its lock).
    """
    proc = tracked(pid_file)
    if proc is None:
        pid_file.unlink(missing_ok=True)
        return False
    with contextlib.suppress(ProcessLookupError):
        os.kill(proc.pid, sig)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and alive(proc):
        time.sleep(0.2)
    if alive(proc):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        while alive(proc):
            time.sleep(0.1)
    with _locked(pid_file):
        if _recorded(pid_file) in (None, proc):
            pid_file.unlink(missing_ok=True)
    return True


def _recorded(pid_file: Path) -> Tracked | None:
    try:
        data = json.loads(pid_file.read_text())
        return Tracked(int(data["pid"]), int(data["start_time"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def port_is_free(host: str, port: int) -> bool:
    """Whether nothing listens on ``host:port`` (so a server of ours may take it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (the system's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def port_answers(host: str, port: int, timeout: float = 1.0) -> bool:
    """Whether something accepts TCP connections on ``host:port``."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
