"""The control plane's connections to each force's data, on the real servers: letting
them go never fails, whatever state Kafka left a force's producer in."""

from __future__ import annotations

import time
import uuid

from cassandra.cluster import Session
from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._scram import (
    ScramCredentialInfo,
    ScramMechanism,
    UserScramCredentialDeletion,
    UserScramCredentialUpsertion,
)

from peaceland.api.force_data import _close, _Connections
from peaceland.stack import Endpoints
from peaceland.tenants.cassandra import connect
from peaceland.tenants.kafka import producer_config
from peaceland.tenants.provisioning.identities import SCRAM_ITERATIONS, ForceCredentials


def test_a_producer_kafka_refused_is_let_go_and_the_session_still_closed(
    kafka_admin: AdminClient, endpoints: Endpoints, cassandra: Session
):
    # A force's principal with no ACL left (its force deprovisioned under a running API):
    # Kafka refuses its producer an idempotence id, a fatal error of that producer.
    credentials = ForceCredentials.generate(f"fd-{uuid.uuid4().hex[:8]}", 1)
    identity = next(iter(credentials.kafka.values()))
    info = ScramCredentialInfo(ScramMechanism.SCRAM_SHA_512, SCRAM_ITERATIONS)
    upsert = UserScramCredentialUpsertion(identity.username, info, identity.password.encode())
    for future in kafka_admin.alter_user_scram_credentials([upsert]).values():
        future.result()
    try:
        access = endpoints.kafka.as_user(identity.username, identity.password)
        producer = Producer(producer_config(access))
        producer.produce("anything", b"refused")  # what the API last sent as that force
        session = connect(endpoints.cassandra)
        connections = _Connections("x", credentials, time.time(), session, producer)
        _close(connections)  # raised KafkaException (FATAL, CLUSTER_AUTHORIZATION_FAILED)
        assert session.is_shutdown
        assert connections.producer is None
        assert connections.session is None
    finally:
        deletion = UserScramCredentialDeletion(identity.username, ScramMechanism.SCRAM_SHA_512)
        for future in kafka_admin.alter_user_scram_credentials([deletion]).values():
            future.result()
