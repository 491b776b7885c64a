"""Sign-ins under a flood: bounded work, bounded attempts.

A password check costs 64 MiB and a fifth of a second of CPU (argon2id, on purpose): a flood
of sign-ins must not take every worker thread and every database connection from the routes
that matter at 3 a.m. (the gateways' key feed first). So the check runs outside any database
transaction, at most ``concurrent`` at once (others wait a moment, then get 429), and each
client address and each account gets ``per_minute`` attempts a minute (a token bucket each;
429 with Retry-After beyond). In memory, per API process: behind N replicas, N times as many.
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

#: Most clients and accounts remembered at once (the oldest are forgotten first).
_REMEMBERED: Final = 100_000


class SignInThrottle:
    def __init__(self, concurrent: int = 4, per_minute: int = 10) -> None:
        self._slots = threading.BoundedSemaphore(concurrent)
        self._rate = per_minute / 60.0
        self._burst = float(per_minute)
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()
        self._lock = threading.Lock()

    def attempt(self, *keys: str) -> None:
        """Count one attempt against each key (a client address, an e-mail address);
        429 if any has none left."""
        now = time.monotonic()
        with self._lock:
            updated = {}
            for key in keys:
                tokens, at = self._buckets.get(key, (self._burst, now))
                tokens = min(self._burst, tokens + (now - at) * self._rate)
                if tokens < 1:
                    wait = math.ceil((1 - tokens) / self._rate)
                    raise Problem(
                        429,
                        f"too many sign-in attempts; try again in {wait} s",
                        headers={"Retry-After": str(wait)},
                    )
                updated[key] = (tokens - 1, now)
            for key, value in updated.items():
                self._buckets[key] = value
                self._buckets.move_to_end(key)
            while len(self._buckets) > _REMEMBERED:
                self._buckets.popitem(last=False)

    @contextmanager
    def checking(self) -> Iterator[None]:
        """A slot for one password check: 429 if none frees within a second."""
        if not self._slots.acquire(timeout=1.0):
            raise Problem(
                429, "too many sign-ins at this moment; try again", headers={"Retry-After": "1"}
            )
        try:
            yield
        finally:
            self._slots.release()
