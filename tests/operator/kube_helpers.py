"""Talking to the test API server the way a user does: kubectl, as admin."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")
ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "tenants" / "examples"


@dataclass(frozen=True)
class Kubectl:
    binary: Path
    kubeconfig: Path

    def __call__(
        self, *args: str, stdin: str | None = None, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [str(self.binary), "--kubeconfig", str(self.kubeconfig), *args],
            input=stdin,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr}")
        return result

    def get(self, kind: str, name: str, namespace: str) -> dict[str, Any]:
        found = self.find(kind, name, namespace)
        assert found is not None, f"no {kind} {namespace}/{name}"
        return found

    def find(self, kind: str, name: str, namespace: str) -> dict[str, Any] | None:
        result = self("get", kind, name, "-n", namespace, "-o", "json", check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return dict(json.loads(result.stdout))

    def apply(self, manifest: dict[str, Any], namespace: str) -> None:
        self("apply", "-n", namespace, "-f", "-", stdin=yaml.safe_dump(manifest))

    def force(self, name: str, namespace: str) -> dict[str, Any]:
        return self.get("policeforce", name, namespace)

    def condition(self, name: str, namespace: str, kind: str) -> dict[str, Any]:
        status = self.force(name, namespace).get("status") or {}
        return next((c for c in status.get("conditions", []) if c["type"] == kind), {})

    def mark_available(self, force: str, namespace: str, timeout: float = 20) -> None:
        """Play the kubelet and the Deployment controller, which a bare API server lacks:
        report each consumer Deployment of ``force`` rolled out and available (made within
        ``timeout`` seconds)."""
        for consumer in ("archiver", "alerter"):
            name = f"{force}-{consumer}"
            deployment = eventually(
                lambda: self.find("deployment", name, namespace),  # noqa: B023 - called at once
                timeout,
                f"Deployment {name}",
            )
            replicas = deployment["spec"].get("replicas", 1)
            status = {
                "observedGeneration": deployment["metadata"]["generation"],
                "replicas": replicas,
                "updatedReplicas": replicas,
                "readyReplicas": replicas,
                "availableReplicas": replicas,
            }
            self(
                "patch", "deployment", name, "-n", namespace, "--subresource=status",
                "--type=merge", "-p", json.dumps({"status": status}),
            )  # fmt: skip


def example(name: str) -> dict[str, Any]:
    return dict(yaml.safe_load((EXAMPLES / f"{name}.yaml").read_text()))


def eventually(probe: Callable[[], T | None], timeout: float, what: str) -> T:
    """The first truthy value ``probe`` returns within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out after {timeout}s waiting for {what}"
        time.sleep(0.2)
