"""Forces deleted behind the API's back: what the API keeps of them goes too.

A PoliceForce deleted with kubectl (or by GitOps) never passes through ``DELETE
/v1/forces/{id}``: its drones' keys would stay live in the gateways' feed, and its people
would keep their roles for whoever is sold the id next. Every ``interval`` the reconciler
lists the PoliceForces and forgets (``peaceland.api.forces.forget``) each force the API holds
data of whose resource was absent two passes in a row — never on a failed list, so an API
server outage forgets nothing — and re-checks, under the force's lock, that it is still
absent. Every replica may run it: forgetting is idempotent.
"""

from __future__ import annotations

import logging
import threading

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session, sessionmaker

from peaceland.api.db import now
from peaceland.api.forces import forget
from peaceland.api.kube import Forces, KubernetesUnavailableError
from peaceland.api.models import AuditEvent, Drone, Force, Membership

log = logging.getLogger(__name__)


class ForceReconciler:
    def __init__(self, sessions: sessionmaker[Session], forces: Forces, interval: float) -> None:
        self._sessions = sessions
        self._forces = forces
        self._interval = interval
        self._absent_before: set[str] = set()
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
        present = {r.name for r in self._forces.list()}
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
        absent = {f for f in held if "~" not in f} - present
        forgotten = []
        for force_id in sorted(absent & self._absent_before):
            if self._forget(force_id):
                forgotten.append(force_id)
        self._absent_before = absent - set(forgotten)
        return forgotten

    def _forget(self, force_id: str) -> bool:
        with self._sessions() as db:
            db.execute(select(func.pg_advisory_xact_lock(func.hashtext(f"force/{force_id}"))))
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
                    details={"keys_revoked": revoked, "why": "its PoliceForce is gone"},
                )
            )
            db.commit()
        log.info("force %s is gone from Kubernetes: %d keys revoked, its data archived as %s",
                 force_id, revoked, archived)  # fmt: skip
        return True
