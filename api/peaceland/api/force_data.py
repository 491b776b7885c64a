"""The control plane's connections to each force's data, as that force's own identities.

The alert routes and live feeds of force A read and write A's topics and keyspace signed in
as A's dashboard principal and A's Cassandra role, taken from A's credentials Secret (the
operator's ``<force>-credentials``): Kafka's ACLs and Cassandra's grants refuse them
anything of force B's, whatever our code asks. Sessions and producers are made on first
use and kept per force and credentials generation; a rotation (a new generation in the
Secret) makes new ones and closes the old.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Final

from cassandra.cluster import Session
from confluent_kafka import KafkaException, Producer

from peaceland.tenants.cassandra import CassandraAccess, connect, shutdown_session
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.kafka import Config, KafkaAccess, client_config, producer_config
from peaceland.tenants.provisioning.identities import ForceCredentials, secret_name
from peaceland.tenants.provisioning.lake_identities import S3Key

log = logging.getLogger(__name__)

#: The role whose Kafka principal the control plane uses for a force.
ROLE: Final = "dashboard"
#: How long a force's Secret is trusted before it is read again (a rotation's delay).
_SECRET_SECONDS: Final = 30.0


class ForceDataUnavailableError(Exception):
    """A force's data cannot be reached now (a server down, the Kubernetes API away)."""


class ForceNotProvisionedError(ForceDataUnavailableError):
    """The force has no credentials (yet): not made, or not provisioned yet."""


@dataclass
class _Connections:
    fingerprint: str
    credentials: ForceCredentials
    read_at: float
    session: Session | None = None
    producer: Producer | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


class ForceData:
    """Connections to every force's data, each as the force's own identities."""

    def __init__(
        self,
        kafka: KafkaAccess,
        cassandra: CassandraAccess,
        secrets: Callable[[str], dict[str, str] | None],
        timeout: float = 10.0,
    ) -> None:
        self._kafka = kafka
        self._cassandra = cassandra
        self._secrets = secrets
        self._timeout = timeout
        self._lock = threading.Lock()
        self._forces: dict[str, _Connections] = {}

    def resources(self, force_id: str) -> ForceResources:
        return resources_for(force_id)

    def _connections(self, force_id: str) -> _Connections:
        with self._lock:
            current = self._forces.get(force_id)
        if current is not None and time.monotonic() - current.read_at < _SECRET_SECONDS:
            return current
        try:
            data = self._secrets(secret_name(force_id))
        except Exception as exc:
            if current is not None:
                return current  # the API server is away: the credentials known still work
            raise ForceDataUnavailableError(f"credentials of {force_id} unreadable: {exc}") from exc
        credentials = (
            ForceCredentials.from_secret_data(force_id, data, fill_missing=False) if data else None
        )
        if credentials is None:
            raise ForceNotProvisionedError(
                f"police force {force_id} has no credentials yet (is it Ready?)"
            )
        stale: _Connections | None = None
        with self._lock:
            current = self._forces.get(force_id)
            # Any change of an identity (a rotation, a force made again under its name, a
            # role added): connect anew.
            if current is not None and current.fingerprint == credentials.fingerprint:
                current.read_at = time.monotonic()
                return current
            stale = current
            fresh = _Connections(credentials.fingerprint, credentials, time.monotonic())
            self._forces[force_id] = fresh
        if stale is not None:
            _close(stale)
        return fresh

    def session(self, force_id: str) -> Session:
        """A Cassandra session signed in as the force's role (made once, under the force's
        own lock: other forces' requests never wait for it)."""
        connections = self._connections(force_id)
        with connections.lock:
            if connections.session is None:
                role = connections.credentials.cassandra
                access = self._cassandra.as_role(role.username, role.password)
                try:
                    connections.session = connect(access, timeout=self._timeout)
                except Exception as exc:
                    raise ForceDataUnavailableError(f"Cassandra did not answer: {exc}") from exc
            return connections.session

    def lake_key(self, force_id: str) -> S3Key | None:
        """The force's dashboard key of the lake's object store (its folder, read only);
        None when its Secret holds none (a lake on no object store)."""
        return self._connections(force_id).credentials.s3.get(ROLE)

    def kafka_access(self, force_id: str) -> KafkaAccess:
        identity = self._connections(force_id).credentials.kafka[ROLE]
        return self._kafka.as_user(identity.username, identity.password)

    def fingerprint_of(self, force_id: str) -> str:
        """What identifies the force's current connections (they change with it)."""
        return self._connections(force_id).fingerprint

    def producer(self, force_id: str) -> Producer:
        """An idempotent producer signed in as the force's dashboard principal."""
        connections = self._connections(force_id)
        with connections.lock:
            if connections.producer is None:
                identity = connections.credentials.kafka[ROLE]
                access = self._kafka.as_user(identity.username, identity.password)
                connections.producer = Producer(producer_config(access))
            return connections.producer

    def consumer_config(self, force_id: str) -> Config:
        """A reader of the force's topics: assigned partitions, nothing committed."""
        config: Config = client_config(self.kafka_access(force_id))
        return config | {
            "group.id": f"peaceland.{force_id}.dashboard.feed",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "isolation.level": "read_committed",
            # A position retention has deleted, or of a topic made anew: from the oldest
            # kept, never silently past what exists.
            "auto.offset.reset": "earliest",
        }

    def close(self) -> None:
        with self._lock:
            forces, self._forces = list(self._forces.values()), {}
        for connections in forces:
            _close(connections)


def _close(connections: _Connections) -> None:
    """Flush and let go of the producer (librdkafka's client goes with its last reference),
    close the session."""
    producer, connections.producer = connections.producer, None
    try:
        if producer is not None:
            producer.flush(5)
    except KafkaException as exc:
        # A producer Kafka refused for good (the force's identity gone under us): what it
        # held was not published, and the transitions' outbox publishes it again.
        log.warning(
            "force %s: its producer could not flush before closing: %s",
            connections.credentials.force_id,
            describe(exc),
        )
    finally:
        session, connections.session = connections.session, None
        if session is not None:
            shutdown_session(session)


def describe(exc: BaseException) -> str:
    """A server's error in one line."""
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]


__all__ = [
    "ROLE",
    "ForceData",
    "ForceDataUnavailableError",
    "ForceNotProvisionedError",
    "describe",
]
