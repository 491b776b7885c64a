"""A node for the local stack: runs the forces' consumer Deployments as processes here.

A bare API server has no kubelet and no Deployment controller, and our machines have no
container runtime. This loop plays both for the Deployments the operator renders, and only
for them: each replica runs as ``python -m <module>`` (the container's args) with the
container's environment, ``metadata.name`` given as the pod name, and the mounted ConfigMaps
and Secrets (their items; a Secret's files readable by us only) written to local folders kept
in step with them, as a kubelet keeps a volume. A replica counts as available once its
readiness probe (an HTTP GET on its own port) answers; the Deployment's status says so,
which is what the operator reads. A changed Deployment restarts its replicas (SIGTERM: they
finish their batch and commit); a deleted one stops them.

It does not pull images or enforce resources: the code that runs is this checkout's.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Secret

from peaceland.node.launch import ServiceProcess
from peaceland.stack.processes import free_port, port_answers
from peaceland.tenants.workloads import decode_secret_data

log = logging.getLogger(__name__)

MANAGED: Final = {"app.kubernetes.io/managed-by": "peaceland-operator"}


#: Stands for the replica's pod in an emptyDir's folder (``_volumes``).
_POD: Final = "{pod}"


@dataclass(frozen=True, slots=True)
class Replica:
    namespace: str
    deployment: str
    index: int

    @property
    def pod(self) -> str:
        return f"{self.deployment}-{self.index}"

    @property
    def key(self) -> str:
        # A namespace holds no '.', so this names one replica only.
        return f"{self.namespace}.{self.pod}"


class LocalNode:
    """Runs the managed Deployments of the API server behind ``kubeconfig``."""

    def __init__(self, kubeconfig: Path, state_dir: Path, namespaces: list[str]) -> None:
        self.client = Client(KubeConfig.from_file(kubeconfig), field_manager="peaceland-node")
        self.state_dir = state_dir
        self.namespaces = namespaces
        self.root = state_dir / "node"

    def run(self, stop: threading.Event, interval: float = 1.0) -> None:
        try:
            while not stop.is_set():
                try:
                    self.sync()
                except (httpx2.HTTPError, OSError, ValueError) as exc:
                    # The API server restarting, a record half written: try again.
                    log.warning("sync failed, retrying: %s", exc)
                stop.wait(interval)
        finally:
            self.stop_all()

    def sync(self) -> None:
        wanted: set[str] = set()
        for namespace in self.namespaces:
            labels: dict[str, Any] = dict(MANAGED)
            for deployment in self.client.list(Deployment, namespace=namespace, labels=labels):
                wanted |= self._sync_deployment(deployment)
        for record in self._records():
            if record.stem not in wanted:
                self._process(record.stem).stop(timeout=30)
                record.unlink(missing_ok=True)

    def stop_all(self) -> None:
        for record in self._records():
            self._process(record.stem).stop(timeout=30)

    def _records(self) -> list[Path]:
        # Only this node's namespaces: another node may serve others on this machine.
        return [r for ns in self.namespaces for r in (self.root / ns).glob("*.json")]

    def _sync_deployment(self, deployment: Deployment) -> set[str]:
        meta, spec = deployment.metadata, deployment.spec
        if meta is None or spec is None or meta.name is None or meta.namespace is None:
            return set()
        pod_spec = spec.template.spec
        if pod_spec is None or not pod_spec.containers:
            return set()
        container = pod_spec.containers[0]
        files = self._volumes(meta.namespace, meta.name, pod_spec.to_dict(), container.to_dict())
        # The revision: what the kubelet would see change. A ConfigMap's content is not part
        # of it: the files change in place, as the kubelet updates a mounted volume.
        revision = hashlib.sha256(
            json.dumps(spec.template.to_dict(), sort_keys=True).encode()
        ).hexdigest()[:16]
        replicas = spec.replicas if spec.replicas is not None else 1
        keys, available = set(), 0
        for index in range(replicas):
            replica = Replica(meta.namespace, meta.name, index)
            keys.add(replica.key)
            if self._ensure(replica, container.to_dict(), files, revision):
                available += 1
        self._report(deployment, replicas, available)
        return keys

    def _volumes(
        self, namespace: str, deployment: str, pod_spec: dict[str, Any], container: dict[str, Any]
    ) -> dict[str, str]:
        """Mount paths mapped to local folders holding the ConfigMaps' and Secrets' files,
        and the pod's emptyDirs but ``/tmp`` (its processes share this machine's): each
        replica's own folder, the ``_POD`` in its name replaced by the replica's pod."""
        volumes = {v["name"]: v for v in pod_spec.get("volumes", [])}
        mounts: dict[str, str] = {}
        for mount in container.get("volumeMounts", []):
            volume = volumes.get(mount["name"], {})
            if "configMap" in volume:
                name = volume["configMap"]["name"]
                folder = self.root / namespace / "volumes" / name
                files = self._config_map(namespace, name)
                mode = 0o644
            elif "secret" in volume:
                name = volume["secret"]["secretName"]
                folder = self.root / namespace / "volumes" / f"{deployment}.{mount['name']}"
                files = self._secret(namespace, name, volume["secret"].get("items"))
                mode = 0o600
            elif "emptyDir" in volume and mount["mountPath"] != "/tmp":  # noqa: S108
                # An emptyDir is a pod's own: made by ``_process`` for each replica.
                folder = self.root / namespace / "volumes" / f"{_POD}.{mount['name']}"
                mounts[mount["mountPath"]] = str(folder)
                continue
            else:
                continue
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
            for key, value in files.items():
                target = folder / key
                if not target.exists() or target.read_text() != value:
                    partial = folder / f".{key}.partial"
                    partial.touch(mode=mode)
                    partial.write_text(value)
                    partial.replace(target)  # readers never see half a file
            mounts[mount["mountPath"]] = str(folder)
        return mounts

    def _config_map(self, namespace: str, name: str) -> dict[str, str]:
        try:
            return self.client.get(ConfigMap, name, namespace=namespace).data or {}
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            return {}

    def _secret(
        self, namespace: str, name: str, items: list[dict[str, str]] | None
    ) -> dict[str, str]:
        """The Secret's files: each item's key under its path, or every key."""
        try:
            raw = self.client.get(Secret, name, namespace=namespace).data or {}
        except ApiError as exc:
            if exc.status.code != 404:
                raise
            return {}
        data = decode_secret_data(raw)
        if items is None:
            return data
        return {item["path"]: data[item["key"]] for item in items if item["key"] in data}

    def _ensure(
        self, replica: Replica, container: dict[str, Any], mounts: dict[str, str], revision: str
    ) -> bool:
        """Start or restart the replica as needed; returns whether it is available."""
        record = self.root / replica.namespace / f"{replica.key}.json"
        known = json.loads(record.read_text()) if record.exists() else {}
        process = self._process(replica.key, container, replica, mounts, known.get("port"))
        if known.get("revision") != revision or not process.alive():
            process.stop(timeout=30)
            port = free_port()
            process = self._process(replica.key, container, replica, mounts, port)
            process.start()
            record.parent.mkdir(parents=True, exist_ok=True)
            record.write_text(json.dumps({"revision": revision, "port": port}))
            log.info("started %s/%s (revision %s)", replica.namespace, replica.pod, revision)
            return False
        known_port = known.get("port")
        return known_port is not None and _ready(container, int(known_port))

    def _process(
        self,
        key: str,
        container: dict[str, Any] | None = None,
        replica: Replica | None = None,
        mounts: dict[str, str] | None = None,
        port: int | None = None,
    ) -> ServiceProcess:
        env: dict[str, str] = {}
        module = "peaceland.services"
        if container is not None and replica is not None:
            args = container.get("args") or []
            if len(args) >= 3 and args[1] == "-m":
                module = args[2]
            for item in container.get("env", []):
                value = item.get("value")
                if (
                    value is None
                    and item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath")
                    == "metadata.name"
                ):
                    value = replica.pod
                if value is None:
                    continue
                # The longest mount path first; a path under it, not one merely starting
                # with the same characters.
                for mount, folder in sorted((mounts or {}).items(), key=lambda m: -len(m[0])):
                    if value == mount or value.startswith(mount.rstrip("/") + "/"):
                        own = folder.replace(_POD, replica.pod)
                        if own != folder:
                            Path(own).mkdir(parents=True, exist_ok=True, mode=0o700)
                        value = own + value[len(mount) :]
                        break
                if item["name"].endswith("_METRICS_PORT") and port:
                    value = str(port)  # every replica on this one machine needs its own
                env[item["name"]] = value
        return ServiceProcess(key, "node", env, self.state_dir, module=module)

    def _report(self, deployment: Deployment, replicas: int, available: int) -> None:
        meta = deployment.metadata
        assert meta is not None
        status = {
            "observedGeneration": meta.generation,
            "replicas": replicas,
            "updatedReplicas": replicas,
            "readyReplicas": available,
            "availableReplicas": available,
        }
        current = deployment.status.to_dict() if deployment.status else {}
        if all(current.get(k) == v for k, v in status.items()):
            return
        self.client.patch(
            Deployment.Status, meta.name or "", {"status": status}, namespace=meta.namespace
        )


def _ready(container: dict[str, Any], port: int) -> bool:
    """The container's readiness probe (an HTTP GET), asked on the replica's own port; a
    container without one is ready once its port answers."""
    probe = (container.get("readinessProbe") or {}).get("httpGet")
    if not probe:
        return port_answers("127.0.0.1", port)
    try:
        response = httpx2.get(f"http://127.0.0.1:{port}{probe.get('path', '/')}", timeout=2)
    except httpx2.HTTPError:
        return False
    return response.status_code < 400


def node_process(
    kubeconfig: Path, state_dir: Path, namespaces: list[str], name: str = "node"
) -> ServiceProcess:
    """The node loop as a background process of this machine, for the Deployments of
    ``namespaces`` (``peaceland stack down`` stops it, and it stops the replicas it runs)."""
    env = {
        "KUBECONFIG": str(kubeconfig),
        "PEACELAND_STATE_DIR": str(state_dir),
        "PEACELAND_NODE_NAMESPACES": ",".join(namespaces),
    }
    return ServiceProcess(name, "peaceland", env, state_dir, module="peaceland.node")


def main() -> None:
    """``python -m peaceland.node``: the node loop, configured by its environment."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger("httpx2").setLevel(logging.WARNING)
    kubeconfig = Path(os.environ["KUBECONFIG"])
    namespaces = [n for n in os.environ["PEACELAND_NODE_NAMESPACES"].split(",") if n]
    node = LocalNode(kubeconfig, Path(os.environ["PEACELAND_STATE_DIR"]), namespaces)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    log.info("running the forces' Deployments of %s in %s", kubeconfig, ", ".join(namespaces))
    node.run(stop)
