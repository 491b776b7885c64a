"""What a consumer says of itself: the probes Kubernetes asks, and a watchdog for hangs.

- ``/livez``: the poll loop has turned within ``liveness_timeout`` (or within the allowance
  of the call it is in, when that call said how long it may take). A loop stuck in a call
  that never returns fails it; the watchdog then writes every thread's stack to the log, so
  the hang can be found and fixed, and ends the process, so that it is started afresh
  (Kubernetes restarts it; so does the liveness probe, should the watchdog itself hang).
- ``/readyz``: alive, and not retrying one batch for longer than ``ready_grace`` (Cassandra
  or Kafka refusing work): the Deployment then shows the consumer unavailable, and the body
  says why.
- ``/metrics``: Prometheus.

One small HTTP server per process, on the metrics port.
"""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Verdict:
    ok: bool
    detail: dict[str, Any]


class Health:
    """The loop's heartbeat and its retry state, read by the probes and the watchdog."""

    def __init__(self, liveness_timeout: float = 60.0, ready_grace: float = 30.0) -> None:
        self.liveness_timeout = liveness_timeout
        self.ready_grace = ready_grace
        self._lock = threading.Lock()
        self._tick = time.monotonic()
        self._deadline = self._tick + liveness_timeout
        self._where = "starting"
        self._retrying_since: float | None = None
        self._retry: tuple[str, str] = ("", "")
        self._started = False

    def started(self) -> None:
        """The consumer has joined its group: from now on it may say it is ready."""
        with self._lock:
            self._started = True

    def tick(self, where: str, allowance: float | None = None) -> None:
        """The loop is alive, at ``where`` (said by the watchdog if it stops there), and
        will tick again within ``allowance`` seconds (by default the liveness timeout)."""
        with self._lock:
            self._tick = time.monotonic()
            self._deadline = self._tick + (allowance or self.liveness_timeout)
            self._where = where

    def retrying(self, step: str, reason: str) -> None:
        with self._lock:
            if self._retrying_since is None:
                self._retrying_since = time.monotonic()
            self._retry = (step, reason)

    def recovered(self) -> None:
        with self._lock:
            self._retrying_since = None

    def retrying_seconds(self) -> float:
        with self._lock:
            since = self._retrying_since
        return 0.0 if since is None else time.monotonic() - since

    def liveness(self) -> Verdict:
        with self._lock:
            now = time.monotonic()
            silent = now - self._tick
            where = self._where
            ok = now <= self._deadline
        return Verdict(
            ok,
            {
                "status": "alive" if ok else "stuck",
                "where": where,
                "seconds_since_loop": round(silent, 1),
            },
        )

    def readiness(self) -> Verdict:
        alive = self.liveness()
        if not alive.ok:
            return alive
        with self._lock:
            started, where = self._started, self._where
        if not started:
            return Verdict(False, {"status": "starting", "where": where})
        retrying = self.retrying_seconds()
        if retrying > self.ready_grace:
            step, reason = self._retry
            return Verdict(
                False,
                {
                    "status": "retrying",
                    "step": step,
                    "reason": reason,
                    "seconds": round(retrying, 1),
                },
            )
        return Verdict(True, {"status": "ready"})


class _Handler(BaseHTTPRequestHandler):
    health: Health

    def do_GET(self) -> None:
        if self.path.startswith("/metrics"):
            self._send(200, generate_latest(REGISTRY), CONTENT_TYPE_LATEST)
            return
        verdict = {
            "/livez": self.health.liveness,
            "/healthz": self.health.liveness,
            "/readyz": self.health.readiness,
        }.get(self.path.split("?")[0])
        if verdict is None:
            self._send(404, b'{"detail": "not found"}', "application/json")
            return
        result = verdict()
        self._send(
            200 if result.ok else 503, json.dumps(result.detail).encode(), "application/json"
        )

    def _send(self, code: int, body: bytes, content_type: str) -> None:
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Probes every few seconds would drown the log."""


def serve(port: int, health: Health, host: str = "0.0.0.0") -> ThreadingHTTPServer | None:  # noqa: S104 - a pod's probes come from the node
    """Serve the probes and ``/metrics`` on ``port`` from a daemon thread (0: none)."""
    if not port:
        return None
    handler = type("Handler", (_Handler,), {"health": health})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, name="health", daemon=True).start()
    return server


def watch(
    health: Health, stop: threading.Event, every: float = 5.0, exit_when_stuck: bool = True
) -> threading.Thread:
    """Once the loop stops turning past its allowance: write every thread's stack to stderr
    and, with ``exit_when_stuck``, end the process (status 70) to be started afresh: no known
    hang heals by itself, and a restarted consumer replays what it had not committed."""

    def run() -> None:
        while not stop.wait(every):
            verdict = health.liveness()
            if verdict.ok:
                continue
            log.error("the poll loop is stuck: %s; every thread's stack follows", verdict.detail)
            faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
            if exit_when_stuck:
                log.error("exiting to be restarted")
                sys.stderr.flush()
                os._exit(70)
            return

    thread = threading.Thread(target=run, name="watchdog", daemon=True)
    thread.start()
    return thread
