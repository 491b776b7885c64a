"""The force's objects in Kubernetes: applied by server-side apply, read back, deleted.

Server-side apply with our field manager and ``force``: the fields we render are ours, so a
hand edit of one of them is overwritten on the next reconcile (drift repair), while fields we
never set (a HorizontalPodAutoscaler's replicas aside, which we do set) are left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final, TypeVar

import httpx2
from lightkube import ApiError, Client
from lightkube.core.resource import NamespacedResource
from lightkube.generic_resource import create_namespaced_resource
from lightkube.resources.apps_v1 import Deployment
from lightkube.resources.core_v1 import ConfigMap, Secret

from peaceland.tenants.policeforce import GROUP, KIND, PLURAL, VERSION
from peaceland.tenants.provisioning.identities import secret_name
from peaceland.tenants.workloads import CONSUMERS, decode_secret_data, labels

FIELD_MANAGER: Final = "peaceland-operator"

_R = TypeVar("_R", Deployment, ConfigMap, Secret)
_KINDS: Final[dict[str, type[Deployment] | type[ConfigMap] | type[Secret]]] = {
    "Deployment": Deployment,
    "ConfigMap": ConfigMap,
    "Secret": Secret,
}


class NotOwnedError(Exception):
    """An object of the name we would write exists and is not the force's: we never take
    over what another owner (a person, another force, another tool) made."""


PoliceForce = create_namespaced_resource(GROUP, VERSION, KIND, PLURAL)
_K = TypeVar("_K", bound=NamespacedResource)


@dataclass(frozen=True, slots=True)
class Availability:
    """One consumer Deployment's rollout, as its controller reports it."""

    name: str
    desired: int
    available: int
    current: bool  # the controller has seen the latest spec
    #: Replicas running the latest pod template (its credentials among it).
    updated: int | None = None
    #: Every replica, old template and new (a surge).
    total: int | None = None
    #: Pods stopping (finishing their batch), which ``total`` does not count.
    terminating: int | None = None

    @property
    def ready(self) -> bool:
        # Rolled: every replica on the latest template, no older one left (the old
        # credentials may be retired only then).
        rolled = self.updated is None or (
            self.updated >= self.desired
            and (self.total is None or self.total <= self.updated)
            and not self.terminating
        )
        return self.current and rolled and self.available >= self.desired

    def __str__(self) -> str:
        state = f"{self.available}/{self.desired} available"
        if self.current and self.updated is not None and self.updated < self.desired:
            return f"{state}, {self.updated} updated"
        return state if self.current else f"{state}, rollout not observed yet"


class Workloads:
    """A force's ConfigMap and consumer Deployments, through one API client.

    kopf's worker threads call it at once, unserialised: the client's connection pool is
    thread-safe, and msgspec (which lightkube decodes with) publishes a type's decoding plan
    only once it is complete since 0.23; 0.22 let a second thread use a half-built one and
    crashed (docs/development.md, "The Kubernetes client"; tests/operator/test_kube.py).
    """

    def __init__(self, client: Client) -> None:
        self._client = client

    def apply(self, namespace: str, manifests: list[dict[str, Any]]) -> list[str]:
        """Apply ``manifests`` in ``namespace``; returns the names of objects created or
        changed (empty when everything already matched)."""
        changed: list[str] = []
        for manifest in manifests:
            kind = manifest["kind"]
            if kind not in _KINDS:
                raise ValueError(f"no {kind} among a force's workloads")
            if self._apply(_KINDS[kind], namespace, manifest):
                changed.append(f"{kind}/{manifest['metadata']['name']}")
        return changed

    def generation(self, namespace: str, name: str) -> int | None:
        """The PoliceForce's live generation; None when it is gone or being deleted."""
        force = self._get(PoliceForce, name, namespace)
        meta = force.metadata if force else None
        if meta is None or meta.deletionTimestamp is not None:
            return None
        return meta.generation

    def force_exists(self, owner: str) -> bool | None:
        """Whether the PoliceForce ``namespace/name`` exists; None when we may not look."""
        namespace, _, name = owner.partition("/")
        try:
            return self._get(PoliceForce, name, namespace) is not None
        except httpx2.HTTPError:  # forbidden, unreachable: we cannot tell
            return None

    def availability(
        self, namespace: str, force_id: str, consumers: tuple[str, ...] = CONSUMERS
    ) -> list[Availability]:
        out = []
        for consumer in consumers:
            name = f"{force_id}-{consumer}"
            deployment = self._get(Deployment, name, namespace)
            if deployment is None:
                out.append(Availability(name, 1, 0, current=False))
                continue
            spec, status, meta = deployment.spec, deployment.status, deployment.metadata
            desired = spec.replicas if spec and spec.replicas is not None else 1
            generation = meta.generation if meta else None
            observed = status.observedGeneration if status else None
            out.append(
                Availability(
                    name,
                    desired,
                    (status.availableReplicas or 0) if status else 0,
                    current=observed is not None and observed == generation,
                    updated=(status.updatedReplicas or 0) if status else 0,
                    total=(status.replicas or 0) if status else 0,
                    terminating=status.terminatingReplicas if status else None,
                )
            )
        return out

    def delete(self, namespace: str, force_id: str, owner_uid: str) -> list[str]:
        """Delete the force's Deployments and ConfigMap; returns what was there.

        Their ownerReferences would let the garbage collector do it; doing it ourselves
        frees the consumers at once, and works where no garbage collector runs."""
        deleted = self._delete(Deployment, namespace, force_id)
        deleted += self._delete(ConfigMap, namespace, force_id)
        # The credentials Secret by name (no list: the operator never lists Secrets), and
        # only if it is this force's.
        try:
            owned = self.secret_data(namespace, secret_name(force_id), owner_uid) is not None
        except NotOwnedError:
            owned = False
        if owned:
            try:
                self._client.delete(Secret, secret_name(force_id), namespace=namespace)
                deleted.append(f"Secret/{secret_name(force_id)}")
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        return deleted

    def secret_data(self, namespace: str, name: str, owner_uid: str) -> dict[str, str] | None:
        """The decoded data of the force's Secret; None when there is none. Raises
        NotOwnedError when one of that name is not the force's."""
        secret = self._get(Secret, name, namespace)
        if secret is None:
            return None
        _check_owner(secret, owner_uid, f"Secret {name}")
        return decode_secret_data(secret.data)

    def _get(self, kind: type[_K], name: str, namespace: str) -> _K | None:
        """The object, or None when it does not exist."""
        try:
            return self._client.get(kind, name, namespace=namespace)
        except ApiError as exc:
            if exc.status.code == 404:
                return None
            raise

    def _apply(
        self,
        kind: type[Deployment] | type[ConfigMap] | type[Secret],
        namespace: str,
        manifest: dict[str, Any],
    ) -> bool:
        name = manifest["metadata"]["name"]
        before = self._get(kind, name, namespace)
        if before is not None:
            owner_uid = manifest["metadata"]["ownerReferences"][0]["uid"]
            _check_owner(before, owner_uid, f"{manifest['kind']} {name}")
        version = before.metadata.resourceVersion if before and before.metadata else None
        obj: Deployment | ConfigMap | Secret = kind.from_dict(  # type: ignore[assignment]  # from_dict returns Self
            {**manifest, "metadata": {**manifest["metadata"], "namespace": namespace}}
        )
        after = self._client.apply(obj, field_manager=FIELD_MANAGER, force=True)
        return after.metadata is None or after.metadata.resourceVersion != version

    def _delete(self, kind: type[_R], namespace: str, force_id: str) -> list[str]:
        selector: dict[str, Any] = dict(labels(force_id))
        deleted = []
        for obj in self._client.list(kind, namespace=namespace, labels=selector):
            name = obj.metadata.name if obj.metadata else None
            if name is None:
                continue
            try:
                self._client.delete(kind, name, namespace=namespace)
                deleted.append(f"{kind.__name__}/{name}")
            except ApiError as exc:
                if exc.status.code != 404:
                    raise
        return deleted


def _check_owner(obj: Any, owner_uid: str, what: str) -> None:
    references = (obj.metadata.ownerReferences if obj.metadata else None) or []
    if not any(ref.uid == owner_uid and ref.controller for ref in references):
        raise NotOwnedError(
            f"{what} exists and does not belong to this PoliceForce: the operator never "
            "takes over an object it did not make; rename or remove it"
        )
