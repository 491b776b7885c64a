"""Forces deleted behind the API's back: what the API keeps of them goes too.

A PoliceForce deleted with kubectl (or by GitOps) never passes through ``DELETE
/v1/forces/{id}``: its drones' keys would stay live in the gateways' feed, and its people
would keep their roles for whoever is sold the id next. Every ``interval`` the reconciler
lists the PoliceForces and forgets (``peaceland.api.forces.forget``) each force the API holds
data of whose resource has been absent from two passes at least and for ``absent_for``
seconds, and is still absent when asked by name under the force's lock. Forgetting cannot be
undone, so the reconciler refuses to act on a list that looks wrong rather than on a force:
never on a failed list (an API server outage), never on an empty list while forces are held
(a wrong namespace, a cluster being restored), never on more than half the held forces at
once; it says so in its log instead. Every replica may run it: forgetting is idempotent.

Each pass also copies what the operator measured of every force (``status.usage``: the bytes
it stores) into its days of usage; a day keeps its most, so replicas and repeated passes
agree.
"""

from __future__ import annotations

import logging
import threading
import time

from sqlalchemy import select, union
from sqlalchemy.orm import Session, sessionmaker

from peaceland.api.db import now
from peaceland.api.forces import forget, forgotten, lock_force
from peaceland.api.kube import ForceResource, Forces, KubernetesUnavailableError
from peaceland.api.metering import measured_usage, record_storage
from peaceland.api.models import AuditEvent, Drone, Force, Membership

log = logging.getLogger(__name__)


class ForceReconciler:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        forces: Forces,
        interval: float,
        absent_for: float = 60.0,
    ) -> None:
        self._sessions = sessions
        self._forces = forces
        self._interval = interval
        self._absent_for = absent_for
        #: When each absent force was first seen absent (monotonic).
        self._absent_since: dict[str, float] = {}
        #: The measure last recorded of each force (its resource's UID, the time).
        self._recorded: dict[str, tuple[str, str]] = {}
        #: The UID of each force's resource when last listed (a force gone is recorded
        #: forgotten with it).
        self._uids: dict[str, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="force-reconciler", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self.reconcile()
            except KubernetesUnavailableError as exc:
                log.warning("forces not reconciled this time: %s", exc)
            except Exception:
                log.exception("forces not reconciled this time")

    def reconcile(self) -> list[str]:
        """One pass; returns the forces forgotten."""
        resources = self._forces.list()
        self._record_usage(resources)
        present = {r.name for r in resources}
        self._uids |= {r.name: r.uid for r in resources}
        with self._sessions() as db:
            held = set(
                db.scalars(
                    union(
                        select(Membership.force_id),
                        select(Drone.force_id).where(Drone.retired_at.is_(None)),
                        select(Force.id).where(Force.deleted_at.is_(None)),
                    )
                )
            )
        held = {f for f in held if "~" not in f}
        absent = held - present
        now = time.monotonic()
        due = sorted(
            f
            for f in absent
            if f in self._absent_since and now - self._absent_since[f] >= self._absent_for
        )
        self._absent_since = {f: self._absent_since.get(f, now) for f in absent}
        if due and not present:
            log.error(
                "no PoliceForce listed while %d forces are held: forgetting none (is the "
                "namespace right?)",
                len(held),
            )
            return []
        if len(due) > 1 and len(due) > len(held) / 2:
            log.error(
                "%d of %d forces look gone at once: forgetting none; check the cluster and "
                "delete them through the API if they are",
                len(due),
                len(held),
            )
            return []
        forgotten = [force_id for force_id in due if self._forget(force_id)]
        for force_id in forgotten:
            self._absent_since.pop(force_id, None)
        return forgotten

    def _record_usage(self, resources: list[ForceResource]) -> None:
        """Copy what the operator measured of each force into its days of usage; a force
        whose figures cannot be read or written is logged and tried at the next pass."""
        for resource in sorted(resources, key=lambda r: r.name):
            usage = measured_usage(resource.status)
            if usage is None or resource.deleting:
                continue
            if self._recorded.get(resource.name) == (resource.uid, usage.measured_at):
                continue  # nothing measured since the last pass
            try:
                with self._sessions() as db:
                    # Shared: never while the force is being forgotten (its days archived);
                    # and not once forgotten, while its resource is still being deleted.
                    lock_force(db, resource.name, exclusive=False)
                    if forgotten(db, resource.name, resource.uid):
                        continue
                    record_storage(db, resource.name, usage)
                    db.commit()
                self._recorded[resource.name] = (resource.uid, usage.measured_at)
            except Exception:
                log.exception("usage of force %s not recorded this time", resource.name)
        listed = {r.name for r in resources}
        self._recorded = {k: v for k, v in self._recorded.items() if k in listed}

    def _forget(self, force_id: str) -> bool:
        with self._sessions() as db:
            lock_force(db, force_id, exclusive=True)
            if self._forces.get(force_id) is not None:  # sold again meanwhile
                return False
            revoked, archived = forget(db, force_id)
            db.add(
                AuditEvent(
                    at=now(),
                    actor="system:reconciler",
                    actor_ip=None,
                    force_id=archived,
                    action="force.gone",
                    target=f"force/{force_id}",
                    details={
                        "keys_revoked": revoked,
                        "why": "its PoliceForce is gone",
                        "uid": self._uids.pop(force_id, None),
                    },
                )
            )
            db.commit()
        log.info("force %s is gone from Kubernetes: %d keys revoked, its data archived as %s",
                 force_id, revoked, archived)  # fmt: skip
        return True
