"""Sign-ins under a flood: bounded work, bounded guessing, no lockout by a stranger.

A password check costs 64 MiB and a fifth of a second of CPU (argon2id, on purpose): a flood
of sign-ins must not take every worker thread and every database connection from the routes
that matter at 3 a.m. (the gateways' key feed first). So the check runs outside any database
transaction, at most ``concurrent`` at once (a request finding no slot within a moment gets
429). Buckets then bound the attempts, each refilling over a minute, 429 with Retry-After
when empty:
- each client address: ten times ``per_minute`` attempts of any outcome (a flood from one
  place; loose, as many people may sign in through one proxy);
- each client address and account: ``per_minute`` *failures* (guessing one password);
- each account: ten times that in failures, from everywhere together (guessing from many
  places), which a stranger must sustain to keep its owner out, and which a success does
  not use.
In memory, per API process: behind N replicas, N times as many.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Final

from peaceland.api.problems import Problem

#: Most buckets remembered at once (the least recently used are forgotten first).
_REMEMBERED: Final = 100_000


class SignInThrottle:
    def __init__(self, concurrent: int = 4, per_minute: int = 10) -> None:
        self._slots = threading.BoundedSemaphore(concurrent)
        self._per_minute = per_minute
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def _limits(self, client: str, account: str) -> dict[str, int]:
        return {
            f"client:{client}": 10 * self._per_minute,
            f"guess:{client}:{account}": self._per_minute,
            f"account:{account}": 10 * self._per_minute,
        }

    def _level(self, key: str, per_minute: int, now: float) -> float:
        tokens, at = self._buckets.get(key, (float(per_minute), now))
        return min(float(per_minute), tokens + (now - at) * per_minute / 60.0)

    def _take(self, key: str, per_minute: int, now: float) -> None:
        self._buckets[key] = (self._level(key, per_minute, now) - 1, now)
        self._buckets.move_to_end(key)
        while len(self._buckets) > _REMEMBERED:
            self._buckets.popitem(last=False)

    def attempt(self, client: str, account: str) -> None:
        """Before a check: 429 if any bucket of this attempt is empty; one attempt taken
        from the client's."""
        now = time.monotonic()
        with self._lock:
            for key, per_minute in self._limits(client, account).items():
                level = self._level(key, per_minute, now)
                if level < 1:
                    wait = math.ceil((1 - level) * 60.0 / per_minute)
                    raise Problem(
                        429,
                        f"too many sign-in attempts; try again in {wait} s",
                        headers={"Retry-After": str(wait)},
                    )
            self._take(f"client:{client}", 10 * self._per_minute, now)

    def failed(self, client: str, account: str) -> None:
        """After a failed check: one failure taken from the guessing buckets."""
        now = time.monotonic()
        with self._lock:
            for key, per_minute in self._limits(client, account).items():
                if not key.startswith("client:"):
                    self._take(key, per_minute, now)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """A slot for one password check: 429 if none frees within a moment."""
        if not self._slots.acquire(timeout=0.2):
            raise Problem(
                429, "too many sign-ins at this moment; try again", headers={"Retry-After": "1"}
            )
        try:
            yield
        finally:
            self._slots.release()
