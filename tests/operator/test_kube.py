"""The operator's Kubernetes client under kopf's worker threads: no lock, no crash.

Both tests run their threads in a child process, so that a segmentation fault fails the test
(a negative exit code) instead of killing pytest. docs/development.md, "The Kubernetes
client", says why lightkube once crashed there and why it no longer can.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING

from tests.operator.kube_helpers import ROOT, Kubectl

if TYPE_CHECKING:  # the fixture's type only: where the stack lives is the fixtures' business
    from peaceland.stack.kube import KubeApiServer

THREADS = 32
ROUNDS = 4

# Every Kubernetes type the operator decodes, decoded for the first time by 32 threads at
# once: each lightkube path that ends in msgspec (objects, lists, a Status, a generic
# resource's metadata).
_FIRST_DECODES = """
import json, sys, threading
from lightkube.core import decoders
from lightkube.models.meta_v1 import ObjectMeta
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap

sys.setswitchinterval(1e-4)
meta = {"name": "x", "namespace": "n", "labels": {"a": "b"}, "resourceVersion": "7"}
deployment = {
    "apiVersion": "apps/v1", "kind": "Deployment", "metadata": meta,
    "spec": {"replicas": 2, "selector": {"matchLabels": {"a": "b"}},
             "template": {"metadata": {"labels": {"a": "b"}},
                          "spec": {"containers": [{"name": "c", "image": "i"}]}}},
}
config_map = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": meta, "data": {"k": "v"}}
status = {"kind": "Status", "apiVersion": "v1", "status": "Failure", "code": 404,
          "reason": "NotFound", "message": "gone"}
one = json.dumps(deployment).encode()
listed = json.dumps({"items": [deployment, deployment], "metadata": {}}).encode()
settings = json.dumps(config_map).encode()
settings_listed = json.dumps({"items": [config_map], "metadata": {}}).encode()
failure = json.dumps(status).encode()
start = threading.Barrier(32)
failed = []

def decode():
    start.wait()
    try:
        for _ in range(20):
            assert decoders.decode_object(one, Deployment).spec.replicas == 2
            assert decoders.decode_list(listed, Deployment)[2][1].metadata.name == "x"
            assert decoders.decode_object(settings, ConfigMap).data == {"k": "v"}
            assert decoders.decode_list(settings_listed, ConfigMap)[2][0].data == {"k": "v"}
            assert decoders.decode_status(failure).code == 404
            assert ObjectMeta.from_dict(meta).resourceVersion == "7"
    except Exception as exc:
        failed.append(repr(exc))

threads = [threading.Thread(target=decode) for _ in range(32)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(failed or "ok")
sys.exit(1 if failed else 0)
"""


def test_threads_decoding_kubernetes_types_for_the_first_time_at_once_crash_nothing():
    # msgspec 0.22 crashed every one of 20 such processes; each takes well under a second.
    for attempt in range(5):
        child = subprocess.run(
            [sys.executable, "-c", _FIRST_DECODES],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert child.returncode == 0, (
            f"attempt {attempt}: exit code {child.returncode} (-11 is a segmentation fault)\n"
            f"{child.stdout}{child.stderr[-3000:]}"
        )


def test_many_threads_calling_the_api_at_once_crash_nothing(
    kubernetes: KubeApiServer, kubectl: Kubectl, namespace: str
):
    kubectl("apply", "-n", namespace, "-f", "tenants/examples/brest.yaml")
    # The operator's own credentials: only the chart's RBAC, as in a cluster.
    command = [
        sys.executable, "-m", "tests.operator.kube_stress",
        "--kubeconfig", str(kubernetes.operator_kubeconfig), "--namespace", namespace,
        "--force", "brest", "--threads", str(THREADS), "--rounds", str(ROUNDS),
    ]  # fmt: skip
    child = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=900, check=False
    )
    assert child.returncode == 0, (
        f"exit code {child.returncode} (-11 is a segmentation fault)\n"
        f"{child.stdout}{child.stderr[-5000:]}"
    )
    summary = json.loads(child.stdout.strip().splitlines()[-1])
    # Each round applies, reads back and changes a ConfigMap and two Deployments twice.
    assert summary["objects_verified"] == THREADS * ROUNDS * 2 * 3, summary
    assert summary["errors"] == 0, summary
    assert summary["calls"] >= THREADS * ROUNDS * 40, summary
    # Past pytest's capture, as the stack's progress is: the figures docs/benchmarks.md quotes.
    if sys.__stderr__ is not None:
        sys.__stderr__.write(f"\n[kube stress] {json.dumps(summary)}\n")
