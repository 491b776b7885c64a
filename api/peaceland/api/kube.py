"""The PoliceForce resources, as the control plane reads and writes them.

The resource is the force's desired state; the API never provisions Kafka or Cassandra
itself. It writes the fields it manages by server-side apply as ``peaceland-api``, always
the whole set it owns (apply removes what a manager stops sending), and takes them over
from whoever set them before (a force first made with kubectl). Concurrent edits: an update
carries the resourceVersion the client saw, and the API server refuses it (409) if the
resource changed since.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx2
from lightkube import ApiError, Client, KubeConfig
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.core_v1 import Secret
from lightkube.types import PatchType

from peaceland.tenants.policeforce import GROUP, KIND, PLURAL, VERSION
from peaceland.tenants.workloads import decode_secret_data

FIELD_MANAGER: Final = "peaceland-api"
#: The annotation naming the plan a force was sold on.
PLAN_ANNOTATION: Final = "peaceland.io/plan"

PoliceForce = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)


class KubernetesUnavailableError(Exception):
    """The Kubernetes API cannot be reached or refused us (not the request's fault)."""


class ConflictError(Exception):
    """The resource changed since the version the caller saw."""


@dataclass(frozen=True, slots=True)
class ForceResource:
    """One PoliceForce as the API server returned it."""

    name: str
    #: The resource's UID: a force sold again under the same name has another.
    uid: str
    spec: dict[str, Any]
    status: dict[str, Any]
    annotations: dict[str, str]
    resource_version: str
    generation: int
    deleting: bool
    created: str | None

    @classmethod
    def of(cls, item: Any) -> ForceResource:
        meta = item.metadata
        return cls(
            name=meta.name,
            uid=meta.uid or "",
            spec=dict(item.get("spec") or {}),
            status=dict(item.get("status") or {}),
            annotations=dict(meta.annotations or {}),
            resource_version=meta.resourceVersion or "",
            generation=meta.generation or 0,
            deleting=meta.deletionTimestamp is not None,
            created=meta.creationTimestamp.isoformat() if meta.creationTimestamp else None,
        )


def make_client(kubeconfig: Path | None) -> Client:
    config = KubeConfig.from_file(kubeconfig) if kubeconfig else KubeConfig.from_service_account()
    return Client(config, field_manager=FIELD_MANAGER, timeout=httpx2.Timeout(10.0))


class Forces:
    """The PoliceForces of one namespace."""

    def __init__(self, client: Client, namespace: str) -> None:
        self._client = client
        self.namespace = namespace

    def close(self) -> None:
        self._client.close()

    def get(self, name: str) -> ForceResource | None:
        try:
            with _answers(missing=True):
                found = self._client.get(PoliceForce, name, namespace=self.namespace)
        except _NotFoundError:
            return None
        return ForceResource.of(found)

    def secret_data(self, name: str) -> dict[str, str] | None:
        """A Secret of the namespace, decoded; None when there is none."""
        try:
            with _answers(missing=True):
                found = self._client.get(Secret, name, namespace=self.namespace)
        except _NotFoundError:
            return None
        return decode_secret_data(found.data)

    def list(self) -> list[ForceResource]:
        with _answers():
            return [
                ForceResource.of(item)
                for item in self._client.list(PoliceForce, namespace=self.namespace)
            ]

    def apply(
        self,
        name: str,
        spec: dict[str, Any],
        annotations: dict[str, str],
        resource_version: str | None = None,
    ) -> ForceResource:
        """Apply the fields the API manages; ``resource_version``: only if still at it."""
        metadata: dict[str, Any] = {"name": name, "namespace": self.namespace}
        if annotations:
            metadata["annotations"] = annotations
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": KIND,
            "metadata": metadata,
            "spec": spec,
        }
        with _answers():
            applied = self._client.patch(
                PoliceForce,
                name,
                body,
                namespace=self.namespace,
                patch_type=PatchType.APPLY,
                field_manager=FIELD_MANAGER,
                force=True,
            )
        return ForceResource.of(applied)

    def delete(self, name: str) -> bool:
        """Ask for the force's deletion (the operator honours its deletion policy);
        False when it was already gone."""
        try:
            with _answers(missing=True):
                self._client.delete(PoliceForce, name, namespace=self.namespace)
        except _NotFoundError:
            return False
        return True


class _NotFoundError(Exception):
    pass


@contextmanager
def _answers(*, missing: bool = False) -> Iterator[None]:
    """The API server's answers as this module's errors: 404 the force is missing
    (``missing``: an answer the caller expects), 409 a version that moved (ConflictError),
    400 and 422 a resource it refuses (ValueError); any other answer, or none,
    KubernetesUnavailableError."""
    try:
        yield
    except ApiError as exc:
        code = exc.status.code
        if code == 404 and missing:
            raise _NotFoundError from None
        if code == 409:
            raise ConflictError(_reason(exc)) from None
        if code in (400, 422):
            raise ValueError(_reason(exc)) from None
        raise KubernetesUnavailableError(_reason(exc)) from None
    except httpx2.HTTPError as exc:
        raise KubernetesUnavailableError(str(exc)) from None


def _reason(exc: ApiError) -> str:
    return f"{exc.status.code} {exc.status.reason}: {exc.status.message}"
