"""``peaceland bench api``: the control plane's figures, measured on the local platform.

A platform in a namespace of its own (operator, node, control plane as processes), a force
sold through the API and Ready, its gateway taking keys from the control plane. Measured:
- how long a revoked key is still taken by the gateway (and a new key not yet), each round
  timed from the API's answer to the gateway's first refusal (acceptance);
- the latency of the main routes while simulated drones send reports through the gateway
  at ``rate`` (the control plane and the data path share the machine, as on a small node).
"""

from __future__ import annotations

import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2

from peaceland.cli.control_plane import ControlPlane
from peaceland.cli.demo import DEMO_PLAN
from peaceland.loadgen.drivers import send_to_gateway
from peaceland.loadgen.errors import LoadError
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.stats import percentiles
from peaceland.node.launch import ControlPlaneSecrets, ForceServices
from peaceland.node.platform import LocalPlatform
from peaceland.operator import manifests
from peaceland.stack import Stack

Say = Callable[[str], None]


def run(stack: Stack, *, rounds: int, requests: int, rate: float, say: Say) -> dict[str, Any]:
    with bench_force(stack, "bench-api", say) as (api, force_id, gateway):
        delays = _revocations(api, gateway, force_id, rounds, say)
        latencies, load = _routes_under_load(api, gateway, force_id, requests, rate, say)
    return {
        "benchmark": "api",
        "rounds": rounds,
        "new_key_taken_after_seconds": _summary(delays["issued"]),
        "revoked_key_refused_after_seconds": _summary(delays["revoked"]),
        "route_latency_ms": latencies,
        "load_during_route_timing": load,
    }


@contextmanager
def bench_force(
    stack: Stack, prefix: str, say: Say, *, partitions: int | None = None
) -> Iterator[tuple[ControlPlane, str, str]]:
    """A platform in a namespace of its own, a force sold on the demo plan and Ready, its
    gateway taking keys from the control plane: (the platform admin's client, the force's
    id, the gateway's URL). Everything removed afterwards."""
    namespace = f"{prefix}-{uuid.uuid4().hex[:6]}"
    platform = LocalPlatform(stack, manifests.definitions(), namespace)
    platform.start(say)
    made = ControlPlaneSecrets.of(stack.settings.state_dir)
    force_id = f"bench-{namespace[-6:]}"
    services: ForceServices | None = None
    api = ControlPlane(platform.control_plane_url)
    try:
        api.sign_in(made.admin_email, made.admin_password_file.read_text(encoding="utf-8").strip())
        api.ensure_plan(DEMO_PLAN)
        force: dict[str, Any] = {
            "id": force_id,
            "display_name": "Bench",
            "plan_id": "demo",
            "deletion_policy": "Delete",
        }
        if partitions is not None:
            force["partitions"] = partitions
        api.create_force(force)
        api.wait_ready(force_id, say)
        services = ForceServices(
            stack.endpoints(),
            force_id,
            stack.settings.state_dir,
            drone_key=None,
            credentials=platform.credentials(force_id),
            only=("gateway",),
            control_plane=(platform.control_plane_url, made.gateway_token_file),
        )
        services.start()
        say(f"gateway of {force_id} on {services.gateway_url}, keys from the control plane")
        yield api, force_id, services.gateway_url
    finally:
        if services is not None:
            services.stop()
        try:
            api.call("DELETE", f"/v1/forces/{force_id}", ok=(202, 404))
            platform.kubectl("wait", "--for=delete", f"policeforce/{force_id}", "-n", namespace,
                             "--timeout=120s")  # fmt: skip
        finally:
            api.close()
            platform.stop()
            platform.kubectl("delete", "namespace", namespace, "--wait=false")


def _status(url: str, key: str, report: bytes) -> int:
    answer = httpx2.post(
        f"{url}/v1/reports",
        content=report,
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        timeout=10,
    )
    return answer.status_code


def _until(gateway: str, key: str, report: bytes, status: int, timeout: float = 60) -> float:
    """Seconds until the gateway answers ``status`` to ``report`` sent with ``key``."""
    began = time.monotonic()
    while _status(gateway, key, report) != status:
        if time.monotonic() - began > timeout:
            raise TimeoutError("the gateway did not follow the control plane in time")
        time.sleep(0.01)
    return time.monotonic() - began


def _revocations(
    api: ControlPlane, gateway: str, force_id: str, rounds: int, say: Say
) -> dict[str, list[float]]:
    fleet = Fleet(drones=1, seed=3)
    drone = fleet.drone_ids[0]
    api.register_drone(force_id, drone)
    delays: dict[str, list[float]] = {"issued": [], "revoked": []}
    for _ in range(rounds):
        report = next(iter(fleet.live_reports())).model_dump_json().encode()
        issued = api.issue_key(force_id, drone, replace=True)
        key = str(issued["key"])
        delays["issued"].append(_until(gateway, key, report, 202))
        api.call("DELETE", f"/v1/forces/{force_id}/drones/{drone}/keys/{issued['key_id']}")
        delays["revoked"].append(_until(gateway, key, report, 401))
    say(
        f"revocation: refused after {statistics.median(delays['revoked']):.2f}s (median of "
        f"{rounds})"
    )
    return delays


def _fleet_keys(api: ControlPlane, gateway: str, force_id: str, fleet: Fleet) -> dict[str, str]:
    """Each drone registered with a key of its own, once the gateway takes them all."""
    keys = {}
    for drone in fleet.drone_ids:
        api.register_drone(force_id, drone)
        keys[drone] = str(api.issue_key(force_id, drone, replace=True)["key"])
    # The gateway has every key once it takes the last one issued.
    last = fleet.drone_ids[-1]
    reports = Fleet(drones=fleet.drones, seed=6).live_reports()
    report = next(r for r in reports if r.drone_id == last)
    _until(gateway, keys[last], report.model_dump_json().encode(), 202)
    return keys


class _Load(threading.Thread):
    """Simulated drones reporting through the gateway until stopped."""

    def __init__(self, fleet: Fleet, gateway: str, keys: dict[str, str], rate: float) -> None:
        super().__init__(name="drones")
        self.fleet, self.gateway, self.keys, self.rate = fleet, gateway, keys, rate
        self.stopping = threading.Event()
        self.accepted = 0
        self.error: str | None = None
        self.began = time.monotonic()

    def run(self) -> None:
        try:
            truth = send_to_gateway(
                self.fleet,
                url=self.gateway,
                drone_key=self.keys,
                total=None,
                rate=self.rate,
                batch=10,
                concurrency=32,
                stop=self.stopping,
            )
            self.accepted = truth.accepted
        except LoadError as exc:
            self.error = str(exc)

    def stop(self) -> dict[str, Any]:
        self.stopping.set()
        self.join()
        if self.error is not None:
            raise LoadError(f"the drones' load failed while routes were timed: {self.error}")
        seconds = time.monotonic() - self.began
        return {
            "target_reports_per_second": self.rate,
            "reports_accepted": self.accepted,
            "achieved_reports_per_second": round(self.accepted / seconds, 1),
            "drones": self.fleet.drones,
        }


def _routes_under_load(
    api: ControlPlane, gateway: str, force_id: str, requests: int, rate: float, say: Say
) -> tuple[dict[str, dict[str, float | None]], dict[str, Any]]:
    fleet = Fleet(drones=50, seed=5)
    load = _Load(fleet, gateway, _fleet_keys(api, gateway, force_id, fleet), rate)
    load.start()
    timings: dict[str, list[float]] = {}

    def timed(name: str, method: str, path: str, **kwargs: Any) -> httpx2.Response:
        start = time.perf_counter()
        answer = api.call(method, path, **kwargs)
        timings.setdefault(name, []).append((time.perf_counter() - start) * 1000)
        return answer

    force = f"/v1/forces/{force_id}"
    try:
        time.sleep(2)  # the load settles
        api.register_drone(force_id, "spare-drone")
        keys = f"{force}/drones/spare-drone/keys"
        etag = api.call("GET", force).headers["etag"]
        for i in range(requests):
            timed("GET /v1/forces/{id}", "GET", force)
            timed("GET /v1/forces", "GET", "/v1/forces")
            timed("GET /v1/forces/{id}/drones", "GET", f"{force}/drones?limit=50")
            issued = timed("POST …/drones/{id}/keys", "POST", keys, json={}).json()
            timed("DELETE …/keys/{id}", "DELETE", f"{keys}/{issued['key_id']}")
            if i % 10 == 0:
                alerting = {"score_threshold": 20.0 + i % 3, "dedup_window_seconds": 600}
                changed = timed(
                    "PATCH /v1/forces/{id}", "PATCH", force,
                    json={"alerting": alerting}, headers={"If-Match": etag},
                )  # fmt: skip
                etag = changed.headers["etag"]
    finally:
        figures = load.stop()
    say(f"routes timed while {figures['reports_accepted']} reports went through the gateway")
    return {name: _summary(values) for name, values in timings.items()}, figures


def _summary(values: list[float]) -> dict[str, float | None]:
    return {"count": len(values), **percentiles(sorted(values))}
