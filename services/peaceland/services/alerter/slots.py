"""Which alerter slot this replica holds: the stable name of its Kafka transactions.

A Kafka transactional id fences its previous holder: ``init_transactions`` with an id aborts
whatever transaction the id's last producer left open and refuses that producer from then
on. Pods of a Deployment have new names when they are replaced, so an id named after the pod
never fences anything: a dead replica's open transaction holds every read_committed reader
of the alerts partitions it wrote to until the transaction times out.

So replicas name their transactions after a slot instead: a number below the Deployment's
replicas, held as a lease in the force's keyspace (``alerter_slots``), claimed and renewed by
lightweight transactions. There are exactly as many slots as replicas, so a replica replacing
a dead one finds no other slot free: it waits for the dead one's lease to lapse
(``lease_seconds``), takes its slot, and fences the dead one's transaction with its id. Two
live replicas never share a slot; and should a partitioned replica keep running after its
lease lapsed, Kafka's fencing (the producer epoch) refuses it the moment its successor starts.
The Deployment therefore never surges: a rolling update stops an old pod (which frees its
slot) before it starts a new one.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from cassandra.cluster import Session
from cassandra.query import PreparedStatement

from peaceland.tenants.cassandra import is_transient
from peaceland.tenants.provisioning.keyspace import checked_keyspace

log = logging.getLogger(__name__)


class SlotLostError(RuntimeError):
    """Another replica holds our slot now: our transactions are no longer ours to make."""


class Slot:
    """One replica's claim on a slot, renewed from a background thread until released."""

    def __init__(
        self,
        session: Session,
        keyspace: str,
        holder: str,
        *,
        slots: int = 1,
        lease_seconds: float = 10.0,
    ) -> None:
        ks = checked_keyspace(keyspace)
        self._session = session
        self.holder = holder
        self.slots = slots
        self.lease_seconds = lease_seconds
        self.number: int | None = None
        self._lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._claim: PreparedStatement = session.prepare(
            f"INSERT INTO {ks}.alerter_slots (slot, holder, claimed_at) "
            "VALUES (?, ?, toTimestamp(now())) IF NOT EXISTS USING TTL ?"
        )
        self._renew: PreparedStatement = session.prepare(
            f"UPDATE {ks}.alerter_slots USING TTL ? SET holder = ? WHERE slot = ? IF holder = ?"
        )
        self._release: PreparedStatement = session.prepare(
            f"DELETE FROM {ks}.alerter_slots WHERE slot = ? IF holder = ?"
        )

    @property
    def _ttl(self) -> int:
        return max(1, round(self.lease_seconds))

    def claim(
        self, stop: threading.Event | None = None, waiting: Callable[[], None] = lambda: None
    ) -> int:
        """Take the lowest free slot, waiting (a third of a lease at a time, calling
        ``waiting`` each time) while none is free: a replica replacing a dead one waits for
        the dead one's lease to lapse."""
        waited = 0.0
        while stop is None or not stop.is_set():
            for number in range(self.slots):
                if self._session.execute(self._claim, (number, self.holder, self._ttl)).was_applied:
                    self.number = number
                    log.info("alerter %s holds slot %d", self.holder, number)
                    self._thread = threading.Thread(
                        target=self._keep, name="alerter-slot", daemon=True
                    )
                    self._thread.start()
                    return number
            pause = self.lease_seconds / 3
            waited += pause
            log.warning(
                "all %d alerter slots held for %.0fs; waiting for a lease to lapse",
                self.slots,
                waited,
            )
            waiting()
            time.sleep(pause)
        raise SlotLostError("stopped before a slot was free")

    def check(self) -> None:
        """Raise SlotLostError once another replica has taken our slot."""
        if self._lost.is_set():
            raise SlotLostError(f"alerter slot {self.number} is held by another replica now")

    def release(self) -> None:
        """Stop renewing and free the slot for whoever comes next (a rolling update's new pod)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.lease_seconds)
        if self.number is None or self._lost.is_set():
            return
        try:
            self._session.execute(self._release, (self.number, self.holder))
        except Exception as exc:
            if not is_transient(exc):
                raise
            log.warning("slot %d not released (%s): it lapses with its lease", self.number, exc)

    def _keep(self) -> None:
        while not self._stop.wait(self.lease_seconds / 3):
            try:
                kept = self._renewed()
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("slot %s not renewed yet: %s", self.number, exc)
                continue
            if not kept:
                log.error("alerter slot %s was taken by another replica", self.number)
                self._lost.set()
                return

    def _renewed(self) -> bool:
        """Renew the lease; False only if another replica holds the slot now. A lease that
        lapsed while Cassandra was away (its row expired, nobody took it) is claimed again."""
        result = self._session.execute(
            self._renew, (self._ttl, self.holder, self.number, self.holder)
        )
        if result.was_applied:
            return True
        if getattr(result.one(), "holder", None) is not None:
            return False
        again = self._session.execute(self._claim, (self.number, self.holder, self._ttl))
        return bool(again.was_applied)
