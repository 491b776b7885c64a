"""The operator's long-lived clients of Kafka and Cassandra, shared by every force."""

from __future__ import annotations

import threading
import time
from typing import Any

from cassandra.cluster import NoHostAvailable, Session
from confluent_kafka.admin import AdminClient

from peaceland.analytics.lake import Storage, open_storage
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.provisioning.claims import ensure_claims_table
from peaceland.tenants.provisioning.lake_identities import (
    LakeIdentities,
    LakeLocation,
    S3Key,
    iam_endpoint_of,
)
from peaceland.tenants.provisioning.quotas import quota_admin

#: Seconds a failed connection to Cassandra is not retried.
_RECONNECT_PAUSE = 5.0


class Servers:
    """The operator's long-lived clients of Kafka and Cassandra, made on first use.

    Cassandra's session is made lazily and again after a failed attempt, so an operator
    started while Cassandra is down recovers by itself.
    """

    def __init__(self, settings: OperatorSettings) -> None:
        self.settings = settings
        self._admin: AdminClient | None = None
        self._quotas: Any = None
        self._session: Session | None = None
        self._lake: LakeIdentities | None = None
        self._lake_admin: S3Key | None = None
        self._lock = threading.Lock()
        self._claims_ready = False
        self._failed_at = -_RECONNECT_PAUSE

    def kafka(self) -> AdminClient:
        with self._lock:
            if self._admin is None:
                self._admin = AdminClient(self.settings.kafka_config())
            return self._admin

    def quotas(self) -> Any:
        """The client that sets Kafka's client quotas (kafka-python: librdkafka has none)."""
        with self._lock:
            if self._quotas is None:
                self._quotas = quota_admin(
                    self.settings.kafka_access(), timeout=self.settings.request_timeout
                )
            return self._quotas

    def lake(self) -> LakeIdentities | None:
        """The forces' users on the lake's object store; None when the lake is on none."""
        settings = self.settings
        if not settings.lake_on_object_store or settings.lake_uri is None:
            return None
        # Read again each time (a mounted Secret's file, small): the administrator's key
        # rotated is taken up without a restart.
        admin = settings.lake_admin_key()
        with self._lock:
            if self._lake is None or self._lake_admin != admin:
                self._lake = LakeIdentities(
                    settings.lake_iam_endpoint or iam_endpoint_of(settings.lake_uri),
                    admin,
                    LakeLocation.from_uri(settings.lake_uri),
                    timeout=settings.request_timeout,
                )
                self._lake_admin = admin
            return self._lake

    def lake_storage(self) -> Storage | None:
        """Every force's lake as its administrator reaches it (a force deleted under the
        ``Delete`` policy loses its lake too); None when there is no lake."""
        settings = self.settings
        if settings.lake_uri is None:
            return None
        if settings.lake_on_object_store:
            key = settings.lake_admin_key()
            return open_storage(
                settings.lake_uri, s3_keys=(key.access_key_id, key.secret_access_key)
            )
        return open_storage(settings.lake_uri)

    def cassandra(self) -> Session:
        """The session; connecting happens outside the lock (it can take a timeout per
        contact point), and a failed attempt is not repeated for a few seconds, so workers
        do not queue behind a Cassandra that is down."""
        with self._lock:
            if self._session is not None:
                return self._session
            if time.monotonic() - self._failed_at < _RECONNECT_PAUSE:
                raise NoHostAvailable("Cassandra was unreachable a moment ago", {})
        try:
            session = connect(
                self.settings.cassandra_access(), timeout=self.settings.request_timeout
            )
        except Exception:
            with self._lock:
                self._failed_at = time.monotonic()
            raise
        with self._lock:
            if self._session is None:
                self._session = session
            current = self._session
        if current is not session:
            shutdown_session(session)  # another worker connected first
        return current

    def claims(self) -> Session:
        """The Cassandra session, with the control keyspace of claims made once."""
        session = self.cassandra()
        with self._lock:
            if not self._claims_ready:
                ensure_claims_table(session, self.settings.claims_replication_factor)
                self._claims_ready = True
        return session

    def close(self) -> None:
        with self._lock:
            if self._session is not None:
                shutdown_session(self._session)
                self._session = None
