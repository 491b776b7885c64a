"""Each analytics question in a process of its own, with hard limits the kernel enforces.

DuckDB's ``memory_limit`` bounds its buffers, not what one function call builds
(``repeat('x', 2e9)`` holds gigabytes in one string), and an interrupt is only seen between
chunks of rows: a review grew the API process to 3.9 GB and ran 30 s past a 2 s limit. So a
question runs in a child process (spawned: nothing of the parent's state, no forked
threads) whose address space is capped (``RLIMIT_AS``): an allocation past it fails inside
the child. The parent waits for the answer until the deadline, then kills the child. The
answer comes back as JSON text, refused past ``result_bytes``. A crash of the child (even a
segfault) is a failed question, never a dead control plane.
"""

from __future__ import annotations

import ctypes
import json
import math
import multiprocessing
import resource
import signal
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Final

#: What a child needs besides its query's memory: the interpreter, DuckDB's and pyarrow's
#: code, thread stacks and arenas (about 1 GB of address space after a first query).
BASELINE_BYTES: Final = 1_536 * 1024 * 1024
_PR_SET_PDEATHSIG: Final = 1


class IsolatedFailureError(Exception):
    """The question could not be answered within its limits; says which and why.
    ``kind``: the name of the exception the job raised (``QueryRefusedError`` …), or
    ``deadline``, ``memory``, ``size``, ``crash``."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class Budget:
    seconds: float
    memory_bytes: int
    result_bytes: int = 64 * 1024 * 1024


def to_json(value: Any) -> Any:
    """A value of an answer as JSON carries it: times are UTC (said with a Z), NaN and
    infinities are null, bytes hexadecimal, anything else unknown its text."""
    if isinstance(value, list | tuple):
        return [to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if value is None or isinstance(value, bool | int | str):
        return value
    return _TEXT.get(type(value), str)(value)


def _utc(moment: datetime) -> str:
    return moment.isoformat() + ("Z" if moment.tzinfo is None else "")


_TEXT: Final[dict[type, Callable[[Any], str]]] = {
    datetime: _utc,
    date: date.isoformat,
    bytes: bytes.hex,
}


def _child(
    reply: Connection, job: Callable[..., dict[str, Any]], args: tuple[Any, ...], budget: Budget
) -> None:
    cap = budget.memory_bytes + BASELINE_BYTES
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    _die_with_parent()
    try:
        answer = job(*args)
        text = json.dumps(to_json(answer), allow_nan=False, separators=(",", ":"))
    except MemoryError:
        reply.send(("memory", "it needed more memory than its limit"))
        return
    except Exception as exc:
        reply.send((type(exc).__name__, str(exc)))
        return
    if len(text) > budget.result_bytes:
        reply.send(("size", f"its answer is over {budget.result_bytes // (1024 * 1024)} MiB"))
        return
    reply.send(("ok", text))


def _die_with_parent() -> None:
    """Linux: the child is killed when its parent dies (even by SIGKILL), so that no job
    outlives the process that waits for it; and when memory runs out in a container, the
    kernel kills the child before its parent."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        Path("/proc/self/oom_score_adj").write_text("1000")
    except (OSError, AttributeError):  # not Linux: the deadline still holds
        return


def run_isolated(
    job: Callable[..., dict[str, Any]], args: tuple[Any, ...], budget: Budget
) -> dict[str, Any]:
    """``job(*args)`` in a child process within ``budget``; its answer (a JSON object).

    ``job`` must be a module-level function and ``args`` plain values (they are pickled).
    A failure the job raises comes back as IsolatedFailureError with its message; so do the
    deadline (the child is killed), the memory cap and an answer too large.
    """
    context = multiprocessing.get_context("spawn")
    receive, send = context.Pipe(duplex=False)
    child = context.Process(target=_child, args=(send, job, args, budget), daemon=True)
    child.start()
    send.close()
    try:
        if not receive.poll(budget.seconds):
            raise IsolatedFailureError(
                "deadline", f"it took longer than its limit of {budget.seconds:g} s and was stopped"
            )
        try:
            kind, payload = receive.recv()
        except EOFError:
            raise IsolatedFailureError(
                "crash", "the engine stopped without answering (out of memory, or a crash)"
            ) from None
    finally:
        child.kill()
        child.join(5)
        receive.close()
    if kind != "ok":
        raise IsolatedFailureError(str(kind), str(payload))
    answer: dict[str, Any] = json.loads(payload)
    return answer
