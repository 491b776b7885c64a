"""Many threads calling the API server through one ``Workloads`` at once, as kopf's workers do.

Run as a process of its own (``tests/operator/test_kube.py`` does): a crash in a C extension
then shows as its exit code (-11 for a segmentation fault) instead of taking pytest down.

Each thread gives forces of its own a ConfigMap and two Deployments, reads every object back
and compares it with what it wrote, changes them, reads them back again, asks for their
availability and for PoliceForces that exist and that do not, then deletes them and checks
they are gone. Every thread starts at the same moment, in a fresh process: the first decoding
of each Kubernetes type happens in many threads at once, which is what crashed lightkube on
msgspec 0.22 (docs/development.md, "The Kubernetes client").

Prints one JSON line: threads, rounds, API calls, objects verified, seconds, errors. Exits 0
only when every thread finished and every check held::

    .venv/bin/python -m tests.operator.kube_stress --kubeconfig KUBECONFIG --namespace NS \\
        --force brest
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
import sys
import threading
import time
import traceback
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap

from peaceland.operator.kube import FIELD_MANAGER, Workloads
from peaceland.tenants.policeforce import PoliceForceSpec
from peaceland.tenants.workloads import (
    CONSUMERS,
    SETTINGS_KEY,
    consumer_deployment,
    settings_config_map,
)
from tests.operator.kube_helpers import example


class _Counted:
    """The client, counting the calls made through it (each is one request)."""

    def __init__(self, client: Client) -> None:
        self._client = client
        self.calls = itertools.count()  # next() is atomic: no lock shared by the threads

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def counted(*args: Any, **kwargs: Any) -> Any:
            next(self.calls)
            return method(*args, **kwargs)

        return counted


_BREST = example("brest")["spec"]


def _spec(replicas: int, threshold: int) -> PoliceForceSpec:
    spec = copy.deepcopy(_BREST)
    spec["consumers"]["replicas"] = replicas
    spec["alerting"]["scoreThreshold"] = threshold
    return PoliceForceSpec.model_validate(spec)


def _uid(force_id: str) -> str:
    """The owner uid of a force's objects here: no such PoliceForce, so nothing GCs them."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, force_id))


def _manifests(force_id: str, spec: PoliceForceSpec) -> list[dict[str, Any]]:
    uid = _uid(force_id)
    return [
        settings_config_map(force_id, uid, spec),
        *(
            consumer_deployment(
                force_id,
                uid,
                spec,
                consumer,
                kafka_bootstrap_servers=f"kafka-{force_id}:9092",
                cassandra_contact_points=f"cassandra-{force_id}",
            )
            for consumer in CONSUMERS
        ),
    ]


class _Round:
    """One thread's force for one round: every check raises AssertionError on a mismatch."""

    def __init__(self, workloads: Workloads, client: Client, namespace: str, force: str):
        self.workloads = workloads
        self.client = client
        self.namespace = namespace
        self.force = force

    def run(self, force_id: str, first: int) -> int:
        """Returns the number of objects read back and found as written."""
        verified = 0
        names = {f"ConfigMap/{force_id}-settings"} | {
            f"Deployment/{force_id}-{consumer}" for consumer in CONSUMERS
        }
        for replicas, threshold in ((first, 10 + first), (first + 1, 20 + first)):
            spec = _spec(replicas, threshold)
            changed = self.workloads.apply(self.namespace, _manifests(force_id, spec))
            assert set(changed) == names, f"{force_id}: applied {changed}, expected {names}"
            verified += self._read_back(force_id, spec)
            # The same manifests again change nothing.
            again = self.workloads.apply(self.namespace, _manifests(force_id, spec))
            assert again == [], f"{force_id}: re-applying changed {again}"
            availability = self.workloads.availability(self.namespace, force_id)
            assert [a.desired for a in availability] == [replicas] * len(CONSUMERS)
            assert not any(a.ready for a in availability), availability  # no node runs them
        generation = self.workloads.generation(self.namespace, self.force)
        assert generation is not None
        assert generation >= 1, generation
        assert self.workloads.generation(self.namespace, force_id) is None
        assert self.workloads.force_exists(f"{self.namespace}/{self.force}") is True
        assert self.workloads.force_exists(f"{self.namespace}/{force_id}") is False
        deleted = self.workloads.delete(self.namespace, force_id, _uid(force_id))
        assert set(deleted) == names, f"{force_id}: deleted {deleted}, expected {names}"
        assert self.workloads.delete(self.namespace, force_id, _uid(force_id)) == []
        for kind, name in (n.split("/") for n in names):
            self._missing(ConfigMap if kind == "ConfigMap" else Deployment, name)
        return verified

    def _missing(self, kind: type[ConfigMap] | type[Deployment], name: str) -> None:
        try:
            self.client.get(kind, name, namespace=self.namespace)
        except ApiError as exc:
            code = exc.status.code
        else:
            code = 200
        assert code == 404, f"{kind.__name__}/{name} after its deletion: {code}"

    def _read_back(self, force_id: str, spec: PoliceForceSpec) -> int:
        config_map = self.client.get(ConfigMap, f"{force_id}-settings", namespace=self.namespace)
        data = json.loads((config_map.data or {})[SETTINGS_KEY])
        written = json.loads(spec.force_settings(force_id).model_dump_json())
        assert data == written, f"{force_id}: ConfigMap holds {data}, wrote {written}"
        for consumer in CONSUMERS:
            name = f"{force_id}-{consumer}"
            deployment = self.client.get(Deployment, name, namespace=self.namespace)
            assert deployment.spec is not None
            assert deployment.metadata is not None
            assert deployment.spec.replicas == spec.consumers.replicas, (name, deployment.spec)
            containers = deployment.spec.template.spec.containers  # type: ignore[union-attr]
            env = {e.name: e.value for e in containers[0].env or []}
            assert env["KAFKA_BOOTSTRAP_SERVERS"] == f"kafka-{force_id}:9092", (name, env)
            labels = deployment.metadata.labels or {}
            assert labels.get("peaceland.io/police-force") == force_id, (name, labels)
        return 1 + len(CONSUMERS)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--kubeconfig", type=Path, required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--force", required=True, help="a PoliceForce in the namespace")
    parser.add_argument("--threads", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument(
        "--switch-interval",
        type=float,
        default=1e-4,
        help="seconds between thread switches (Python's default is 0.005): smaller makes "
        "races between threads likelier",
    )
    args = parser.parse_args(argv)
    sys.setswitchinterval(args.switch_interval)

    # Nothing is decoded before the threads start: the first decoding of each type races.
    client = Client(
        KubeConfig.from_file(args.kubeconfig),
        field_manager=FIELD_MANAGER,
        timeout=httpx2.Timeout(30.0),
    )
    counted = _Counted(client)
    workloads = Workloads(cast(Client, counted))
    reader = cast(Client, counted)
    start = threading.Barrier(args.threads)
    errors: list[str] = []
    verified = itertools.count()

    def thread(index: int) -> Callable[[], None]:
        def run() -> None:
            start.wait()
            one = _Round(workloads, reader, args.namespace, args.force)
            try:
                for r in range(args.rounds):
                    force_id = f"stress-{index:02d}-{r:02d}"
                    for _ in range(one.run(force_id, first=1 + (index + r) % 3)):
                        next(verified)
            except Exception:  # every failure is reported, none stops the other threads
                errors.append(f"thread {index}: {traceback.format_exc()}")

        return run

    threads = [threading.Thread(target=thread(i), name=f"stress-{i}") for i in range(args.threads)]
    began = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    seconds = time.monotonic() - began
    summary = {
        "threads": args.threads,
        "rounds": args.rounds,
        "calls": next(counted.calls),
        "objects_verified": next(verified),
        "seconds": round(seconds, 2),
        "errors": len(errors),
    }
    sys.stderr.writelines(errors)
    sys.stdout.write(json.dumps(summary) + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
