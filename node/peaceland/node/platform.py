"""The platform on this machine the way a cluster runs it: PoliceForce → operator → consumers.

On top of the stack's API server: the CRDs, the operator (a process here, logged in as
admin: the chart's least-privilege RBAC is what the tests run it with) and the local node
that runs the forces' consumer Deployments. A force is then made exactly as a user makes
one, by applying a PoliceForce, and is ready when its status says so.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any, Final

import yaml

from peaceland.node.errors import NodeError
from peaceland.node.kubelet import node_process
from peaceland.node.launch import ServiceProcess, local_api, local_operator, wait_answering
from peaceland.stack import Stack
from peaceland.stack.credentials import admin_credentials
from peaceland.stack.kube import LOCAL_NAMESPACE
from peaceland.stack.processes import free_port
from peaceland.tenants.forces import ForceSettings
from peaceland.tenants.policeforce import GROUP, KIND, VERSION, spec_from
from peaceland.tenants.provisioning.identities import ForceCredentials, secret_name
from peaceland.tenants.workloads import decode_secret_data

#: Where the local platform's forces live (the admin kubeconfig's default namespace).
NAMESPACE: Final = LOCAL_NAMESPACE
#: Where the local platform's control plane listens (another namespace's: a free port).
CONTROL_PLANE_PORT: Final = 8090

Say = Callable[[str], None]


class LocalPlatform:
    """The CRDs, the operator and the node on the stack's API server (which must run)."""

    def __init__(
        self,
        stack: Stack,
        definitions: str,
        namespace: str = NAMESPACE,
        *,
        lake: bool = False,
        lake_on_store: bool = False,
    ) -> None:
        """``definitions``: the CustomResourceDefinitions to install (YAML documents);
        ``lake``: every force also runs its lake consumer, writing under the state
        directory's ``lake`` (what ``peaceland stats`` and ``peaceland sql`` read);
        ``lake_on_store``: … writing to the stack's S3 store instead, under the namespace's
        folder of its bucket, each force with users of its own on the store (the production
        path)."""
        self.stack = stack
        self.definitions = definitions
        self.namespace = namespace
        self.api = stack.kube_apiserver
        state = stack.settings.state_dir
        self.lake_uri: str | None = str(state / "lake") if lake else None
        lake_settings = {"lake_flush_seconds": "5"} if lake or lake_on_store else {}
        if lake_on_store:
            store = stack.endpoints().s3
            if store is None:
                raise NodeError("the stack runs no S3 store for the lake")
            self.lake_uri = store.lake_uri(namespace)
            lake_settings |= {
                "lake_admin_access_key_id": store.access_key,
                "lake_admin_secret_access_key_file": str(admin_credentials(state).s3_secret_file),
            }
        if self.lake_uri is not None:
            lake_settings["lake_uri"] = self.lake_uri
        # The platform's own processes are "operator" and "node"; others carry their namespace.
        suffix = "" if namespace == NAMESPACE else f"-{namespace}"
        self.operator: ServiceProcess = local_operator(
            stack.endpoints(),
            self.api.kubeconfig,
            state,
            name=f"operator{suffix}",
            namespaces=[namespace],
            poll_interval="0.5",
            # Locally, a force's alerts and storage reach its invoice within seconds.
            usage_interval="5",
            # And its reports reach the lake within seconds.
            **lake_settings,
        )
        self.node: ServiceProcess = node_process(
            self.api.kubeconfig, state, [namespace], name=f"node{suffix}"
        )
        #: The control plane serving this namespace's forces.
        port = free_port() if suffix else CONTROL_PLANE_PORT
        self.control_plane_url = f"http://127.0.0.1:{port}"
        self.control_plane: ServiceProcess = local_api(
            stack.endpoints(),
            self.api.kubeconfig,
            state,
            namespace=namespace,
            port=port,
            name=f"api{suffix}",
            lake_uri=self.lake_uri,
        )

    def kubectl(self, *args: str, stdin: str | None = None) -> str:
        result = subprocess.run(
            [str(self.api.kubectl), "--kubeconfig", str(self.api.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise NodeError(f"kubectl {' '.join(args)}: {result.stderr.strip()}")
        return result.stdout

    def start(self, say: Say) -> None:
        """Install the CRDs, make the namespace, start the operator and the node (each
        only if not running already)."""
        self.kubectl(
            "apply",
            "--server-side",
            "--force-conflicts",
            "-f",
            "-",
            stdin=self.definitions,
        )
        self.kubectl("wait", "--for=condition=Established", "crd", "--all", "--timeout=60s")
        self.kubectl(
            "apply", "-f", "-", stdin=json.dumps({"apiVersion": "v1", "kind": "Namespace",
                                                  "metadata": {"name": self.namespace}})
        )  # fmt: skip
        for name, process in (
            ("operator", self.operator),
            ("node", self.node),
            ("control plane", self.control_plane),
        ):
            if not process.alive():
                process.start()
                say(f"{name} started; its log is {process.log_file}")
            else:
                say(f"{name} already running; its log is {process.log_file}")
        wait_answering(
            self.control_plane_url, [self.control_plane], self.control_plane, "the control plane"
        )

    def stop(self) -> None:
        """Stop the control plane, the node (and the consumers it runs), then the operator."""
        self.control_plane.stop()
        self.node.stop()
        self.operator.stop()

    def phase(self, name: str) -> tuple[str | None, bool]:
        """The force's phase, and whether it describes its latest spec."""
        status, current = self._status(name)
        return status.get("phase"), current

    def _status(self, name: str) -> tuple[dict[str, Any], bool]:
        """The force's status, and whether it describes its latest spec."""
        force = json.loads(self.kubectl("get", "policeforce", name, "-n", self.namespace,
                                        "-o", "json"))  # fmt: skip
        status = force.get("status") or {}
        return status, status.get("observedGeneration") == force["metadata"].get("generation")

    def credentials(self, name: str) -> ForceCredentials:
        """The force's identities, as the operator issued them in its Secret."""
        secret = json.loads(
            self.kubectl("get", "secret", secret_name(name), "-n", self.namespace, "-o", "json")
        )
        credentials = ForceCredentials.from_secret_data(
            name, decode_secret_data(secret.get("data"))
        )
        if credentials is None:
            raise NodeError(f"the Secret {secret_name(name)} holds no whole set of credentials")
        return credentials

    def apply_force(self, manifest: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", stdin=yaml.safe_dump(manifest))

    def wait_ready(self, name: str, say: Say, timeout: float = 180.0) -> float:
        """Wait until the force is Ready, saying each change of phase; returns the seconds
        waited."""
        began = time.monotonic()
        seen = None
        while True:
            status, current = self._status(name)
            phase = status.get("phase")
            if phase != seen and phase:
                say(f"police force {name}: {phase}")
                seen = phase
            if phase == "Ready" and current:
                return time.monotonic() - began
            if (phase == "Failed" and current) or time.monotonic() - began > timeout:
                problems = "; ".join(
                    f"{c['type']}: {c.get('message', '')}"
                    for c in status.get("conditions", [])
                    if c.get("status") != "True"
                )
                raise NodeError(
                    f"the police force {name} is not Ready ({phase or 'no status'}): "
                    f"{problems or 'the operator has not answered'}; operator log: "
                    f"{self.operator.log_file}"
                )
            time.sleep(0.25)


def demo_force(settings: ForceSettings) -> dict[str, Any]:
    """A PoliceForce for a force on the one-node stack: one copy of everything."""
    spec = {
        "displayName": f"Demo force {settings.force_id}",
        "plan": {"maxDrones": 10_000, "maxReportsPerSecond": 10_000},
        "alerting": {
            "scoreThreshold": settings.alerting.score_threshold,
            "dedupWindowSeconds": settings.alerting.dedup_window_seconds,
        },
        "retentionDays": settings.retention_days,
        "kafka": {"partitions": 6, "replicationFactor": 1},
        "cassandra": {"replicationStrategy": "SimpleStrategy", "replicationFactor": 1},
        "deletionPolicy": "Retain",
    }
    spec_from(spec)  # the same rules the API server applies, checked before sending
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "metadata": {"name": settings.force_id},
        "spec": spec,
    }
