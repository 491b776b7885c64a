"""A real Kubernetes API server on loopback: etcd and kube-apiserver, built from source.

No scheduler, controller-manager or kubelet run beside it: Deployments are stored and
served but never get Pods, which is what an operator's tests need (docs/kubernetes.md).
Two identities reach it, both by bearer token: ``admin`` (``system:masters``) for people and
test set-up, and the operator's ServiceAccount name, which has no rights until the Helm
chart's RBAC is applied, so tests run the operator with exactly the rights the chart gives.
"""

from __future__ import annotations

import os
import secrets
import ssl
import subprocess
from pathlib import Path
from typing import Any, Final

import httpx2
import yaml

from peaceland.stack import gobuild
from peaceland.stack.errors import StackError
from peaceland.stack.fetch import Progress
from peaceland.stack.servers import Launch, Server

OPERATOR_NAMESPACE: Final = "peaceland-system"
OPERATOR_SERVICE_ACCOUNT: Final = "peaceland-operator"
OPERATOR_USER: Final = f"system:serviceaccount:{OPERATOR_NAMESPACE}:{OPERATOR_SERVICE_ACCOUNT}"
#: The namespace of the local platform's forces: the admin kubeconfig's default, so that
#: `kubectl apply -f tenants/examples/brest.yaml` lands where the local operator serves.
LOCAL_NAMESPACE: Final = "peaceland"


class Etcd(Server):
    """etcd, one member, the API server's only storage; fsync off (a development store)."""

    name = "etcd"

    @property
    def external(self) -> str | None:
        return None

    @property
    def address(self) -> str:
        return f"http://{self.settings.host}:{self.settings.etcd_port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.etcd_port, self.settings.etcd_peer_port]

    def prepare(self, progress: Progress) -> None:
        gobuild.kubernetes_binaries(self.settings.cache_dir, progress)
        self.home.mkdir(parents=True, exist_ok=True)

    def launch(self) -> Launch:
        bin_dir = gobuild.kubernetes_binaries(self.settings.cache_dir, lambda _: None)
        peer = f"http://{self.settings.host}:{self.settings.etcd_peer_port}"
        argv = [
            str(bin_dir / "etcd"),
            "--name=peaceland",
            f"--data-dir={self.home / 'data'}",
            f"--listen-client-urls={self.address}",
            f"--advertise-client-urls={self.address}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=peaceland={peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
        ]
        return Launch(argv)

    def probe(self) -> str | None:
        try:
            answer = httpx2.get(f"{self.address}/health", timeout=2)
        except httpx2.HTTPError as exc:
            return f"no answer: {exc}"
        if answer.status_code != 200 or answer.json().get("health") != "true":
            return f"unhealthy: {answer.text[:200]}"
        return None


class KubeApiServer(Server):
    """kube-apiserver with RBAC, serving HTTPS on loopback with its own self-signed cert."""

    name = "kube-apiserver"
    needs = ("etcd",)

    @property
    def external(self) -> str | None:
        return None

    @property
    def address(self) -> str:
        return f"https://{self.settings.host}:{self.settings.kube_apiserver_port}"

    @property
    def ports(self) -> list[int]:
        return [self.settings.kube_apiserver_port]

    @property
    def kubeconfig(self) -> Path:
        """The admin's kubeconfig (``system:masters``)."""
        return self.home / "kubeconfig"

    @property
    def operator_kubeconfig(self) -> Path:
        """The operator's kubeconfig: its ServiceAccount's name, only the chart's RBAC."""
        return self.home / "kubeconfig-operator"

    @property
    def kubectl(self) -> Path:
        return gobuild.kubernetes_binaries(self.settings.cache_dir, lambda _: None) / "kubectl"

    @property
    def _tokens(self) -> Path:
        return self.home / "tokens.csv"

    @property
    def _ca(self) -> Path:
        return self.home / "certs" / "apiserver.crt"

    def prepare(self, progress: Progress) -> None:
        gobuild.kubernetes_binaries(self.settings.cache_dir, progress)
        (self.home / "certs").mkdir(parents=True, exist_ok=True)
        key = self.home / "service-account.key"
        if not key.exists():
            result = subprocess.run(
                ["openssl", "genrsa", "-out", str(key), "2048"],
                capture_output=True,
                text=True,
                check=False,
            )
            if result.returncode != 0:
                raise StackError(f"openssl could not make the service-account key: {result.stderr}")
        if not self._tokens.exists():
            lines = [
                f"{secrets.token_urlsafe(32)},admin,admin,system:masters",
                f"{secrets.token_urlsafe(32)},{OPERATOR_USER},{OPERATOR_SERVICE_ACCOUNT},"
                f'"system:serviceaccounts,system:serviceaccounts:{OPERATOR_NAMESPACE}"',
            ]
            self._tokens.touch(mode=0o600)
            self._tokens.write_text("\n".join(lines) + "\n")

    def launch(self) -> Launch:
        bin_dir = gobuild.kubernetes_binaries(self.settings.cache_dir, lambda _: None)
        s = self.settings
        key = self.home / "service-account.key"
        argv = [
            str(bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://{s.host}:{s.etcd_port}",
            f"--bind-address={s.host}",
            f"--secure-port={s.kube_apiserver_port}",
            f"--cert-dir={self.home / 'certs'}",
            # Advertise loopback and reconcile no endpoints: otherwise it advertises the
            # machine's address and complains on every sync (docs/kubernetes.md).
            f"--advertise-address={s.host}",
            "--endpoint-reconciler-type=none",
            "--authorization-mode=RBAC",
            f"--token-auth-file={self._tokens}",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={key}",
            f"--service-account-signing-key-file={key}",
            "--service-cluster-ip-range=10.0.0.0/24",
            "--disable-admission-plugins=ServiceAccount",
            "--allow-privileged=true",
            "--v=1",
        ]
        return Launch(argv)

    def probe(self) -> str | None:
        if not self._ca.exists():
            return "no serving certificate yet"
        try:
            answer = httpx2.get(
                f"{self.address}/readyz",
                headers={"Authorization": f"Bearer {self.token('admin')}"},
                verify=ssl.create_default_context(cafile=str(self._ca)),
                timeout=3,
            )
        except httpx2.HTTPError as exc:
            return f"no answer: {exc}"
        if answer.status_code != 200:
            return f"not ready: {answer.text[:300]}"
        return None

    def after_ready(self) -> None:
        self._write_kubeconfig(self.kubeconfig, "admin")
        self._write_kubeconfig(self.operator_kubeconfig, OPERATOR_USER)

    def token(self, user: str) -> str:
        for line in self._tokens.read_text().splitlines():
            token, name, *_ = line.split(",")
            if name == user:
                return token
        raise StackError(f"no token for {user} in {self._tokens}")

    def _write_kubeconfig(self, path: Path, user: str) -> None:
        config: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "peaceland-local",
                    "cluster": {"server": self.address, "certificate-authority": str(self._ca)},
                }
            ],
            "users": [{"name": user, "user": {"token": self.token(user)}}],
            "contexts": [
                {
                    "name": "peaceland-local",
                    "context": {
                        "cluster": "peaceland-local",
                        "user": user,
                        "namespace": LOCAL_NAMESPACE,
                    },
                }
            ],
            "current-context": "peaceland-local",
        }
        path.touch(mode=0o600)
        os.chmod(path, 0o600)
        path.write_text(yaml.safe_dump(config, sort_keys=False))
