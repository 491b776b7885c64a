"""``peaceland bench operator``: seconds from ``kubectl apply`` of a PoliceForce to Ready.

Ready means what it means in a cluster: topics and keyspace made, and the consumer
Deployments available, here run by the local node as real processes. Forces are applied one
after the other (each on an idle platform: the latency a force's administrator sees), then
all at once (the operator under a burst). Every force is deleted afterwards (policy Delete).
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from peaceland.node.platform import LocalPlatform, demo_force
from peaceland.operator import manifests
from peaceland.stack import Stack
from peaceland.tenants.forces import ForceSettings

Say = Callable[[str], None]


def run(stack: Stack, *, forces: int, say: Say) -> dict[str, Any]:
    namespace = f"bench-{uuid.uuid4().hex[:8]}"
    platform = LocalPlatform(stack, manifests.definitions(), namespace)
    platform.start(say)
    names: list[str] = []
    try:
        one_by_one = []
        for i in range(forces):
            name = f"bench-{namespace[6:]}-{i}"
            names.append(name)
            one_by_one.append(_apply_and_wait(platform, [name])[name])
            say(f"{name}: Ready after {one_by_one[-1]:.2f}s")
        burst_names = [f"burst-{namespace[6:]}-{i}" for i in range(forces)]
        names += burst_names
        burst = _apply_and_wait(platform, burst_names)
        say(f"{forces} forces applied at once: the last Ready after {max(burst.values()):.2f}s")
    finally:
        _delete(platform, names, say)
        platform.stop()
        platform.kubectl("delete", "namespace", namespace, "--wait=false")
    return {
        "benchmark": "operator",
        "forces": forces,
        "ready": "topics, keyspace and both consumer Deployments available (local node)",
        "one_by_one_seconds": _summary(one_by_one),
        "all_at_once_seconds": _summary(list(burst.values())),
    }


def _apply_and_wait(platform: LocalPlatform, names: list[str]) -> dict[str, float]:
    applied: dict[str, float] = {}
    for name in names:
        manifest = demo_force(ForceSettings(force_id=name))
        manifest["spec"]["deletionPolicy"] = "Delete"
        platform.apply_force(manifest)
        applied[name] = time.monotonic()
    ready: dict[str, float] = {}
    deadline = time.monotonic() + 120 + 10 * len(names)
    while len(ready) < len(names):
        for name in names:
            if name in ready:
                continue
            phase, current = platform.phase(name)
            if phase == "Ready" and current:
                ready[name] = time.monotonic() - applied[name]
        if time.monotonic() > deadline:
            missing = sorted(set(names) - set(ready))
            raise TimeoutError(f"not Ready in time: {missing}; see {platform.operator.log_file}")
        time.sleep(0.05)
    return ready


def _delete(platform: LocalPlatform, names: list[str], say: Say) -> None:
    if names:
        platform.kubectl("delete", "policeforce", "-n", platform.namespace, "--timeout=120s",
                         *names)  # fmt: skip
        say(f"deleted the {len(names)} bench forces and their data")


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 3),
        "p95": round(ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))], 3),
        "min": round(ordered[0], 3),
        "max": round(ordered[-1], 3),
    }
