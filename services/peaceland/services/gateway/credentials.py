"""Each force's gateway principal, read from the force's credentials Secret through the
Kubernetes API: how a gateway in a cluster produces a force's reports as that force's own
principal, which the brokers let write that force's reports topic only.

The operator writes ``<force>-credentials`` (keys ``gateway.kafka-username`` and
``gateway.kafka-password``) in the force's namespace; the gateway may ``get`` Secrets there,
by name (never list). A force's pair is read once when first asked for, then again every
``refresh_seconds`` by a thread of its own, so the event loop never waits on the Kubernetes
API, and a rotation is taken up within that time.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.resources.core_v1 import Secret

from peaceland.tenants.forces import validate_force_id
from peaceland.tenants.provisioning.identities import secret_name
from peaceland.tenants.workloads import decode_secret_data

log = logging.getLogger(__name__)

Pair = tuple[str, str]


def kube_client(kubeconfig: Path | None) -> Client:
    """The Kubernetes API, as ``kubeconfig`` says or as the pod's ServiceAccount."""
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_service_account()
    return Client(config, timeout=httpx2.Timeout(10.0))


class SecretCredentials:
    """The forces' gateway principals in one namespace's credentials Secrets."""

    def __init__(self, client: Client, namespace: str, refresh_seconds: float = 5.0) -> None:
        self._client = client
        self._namespace = namespace
        self._refresh = refresh_seconds
        self._known: dict[str, Pair | None] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, force_id: str) -> Pair | None:
        """(username, password) of ``force_id``'s gateway principal, or None while the
        force has no Secret (or it holds no gateway pair). The first ask of a force reads
        the Secret; ValueError when the Kubernetes API cannot answer it then."""
        validate_force_id(force_id)
        with self._lock:
            if force_id in self._known:
                return self._known[force_id]
        found = self._read(force_id)
        with self._lock:
            self._known.setdefault(force_id, found)
            return self._known[force_id]

    def _read(self, force_id: str) -> Pair | None:
        try:
            secret = self._client.get(Secret, secret_name(force_id), namespace=self._namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise ValueError(
                f"credentials of {force_id}: the Kubernetes API answered {exc.status.code} "
                f"({exc.status.reason})"
            ) from None
        except httpx2.HTTPError as exc:
            raise ValueError(f"credentials of {force_id}: the Kubernetes API: {exc}") from None
        data = decode_secret_data(secret.data)
        username = data.get("gateway.kafka-username")
        password = data.get("gateway.kafka-password")
        return (username, password) if username and password else None

    def refresh(self) -> None:
        """Read every known force's Secret again; one that cannot be read keeps its pair."""
        with self._lock:
            forces = list(self._known)
        for force_id in forces:
            try:
                found = self._read(force_id)
            except ValueError as exc:
                log.warning("%s; its producer keeps the credentials it has", exc)
                continue
            with self._lock:
                if self._known.get(force_id) != found:
                    log.info("credentials of %s changed in its Secret", force_id)
                self._known[force_id] = found

    def start(self) -> None:
        def loop() -> None:
            while not self._stopping.wait(self._refresh):
                try:
                    self.refresh()
                except Exception:  # a loop that died would miss every rotation silently
                    log.exception("reading the forces' credentials failed; trying again")

        self._thread = threading.Thread(target=loop, name="force-credentials", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout=self._refresh + 15)
        self._client.close()
