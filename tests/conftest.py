"""Fixtures on the real servers of the local stack.

The session reuses a running stack (``peaceland stack up``) or an external one named by
``KAFKA_BOOTSTRAP_SERVERS`` / ``CASSANDRA_CONTACT_POINTS`` / ``DATABASE_URL``, and otherwise
starts the local stack and stops, at the end, what it started. Each test that asks for a
force gets a police force of its own (topics and keyspace), and each that asks for a
database gets a PostgreSQL database of its own: tests never see each other's data.
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit

import psycopg
import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.stack import Endpoints, Stack, StackSettings
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import ForceResources, resources_for
from peaceland.tenants.kafka import client_config
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that reaches the local stack (through any fixture) ``servers``:
    ``make test-fast`` runs the others, in seconds, with no server started."""
    for item in items:
        if "stack" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.servers)


def _progress(message: str) -> None:
    # Past pytest's capture: fetching servers the first time takes a while, say so.
    print(f"[stack] {message}", file=sys.__stderr__, flush=True)


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    stack = Stack(StackSettings(), progress=_progress)
    started = stack.up()
    yield stack
    if started:
        _progress(f"stopping what this test session started: {', '.join(started)}")
        stack.down(started)


@pytest.fixture(scope="session")
def kubernetes(stack: Stack) -> Iterator[KubeApiServer]:
    """The stack's API server (built from source the first time: about 5 minutes)."""
    started = stack.up(["etcd", "kube-apiserver"])
    yield stack.kube_apiserver
    if started:
        stack.down(started)


@pytest.fixture(scope="session")
def endpoints(stack: Stack) -> Endpoints:
    return stack.endpoints()


@pytest.fixture(scope="session")
def kafka_admin(endpoints: Endpoints) -> AdminClient:
    return AdminClient(client_config(endpoints.kafka))


@pytest.fixture(scope="session")
def cassandra(endpoints: Endpoints) -> Iterator[Session]:
    session = connect(endpoints.cassandra)
    yield session
    shutdown_session(session)


@pytest.fixture
def force(kafka_admin: AdminClient, cassandra: Session) -> Iterator[ForceResources]:
    """A police force of this test's own: its topics (3 partitions) and its keyspace."""
    resources = resources_for(f"t-{uuid.uuid4().hex[:12]}")
    ensure_topics(kafka_admin, resources, TopicSettings(partitions=3))
    ensure_keyspace(cassandra, resources.keyspace, Replication())
    yield resources
    delete_topics(kafka_admin, resources)
    drop_keyspace(cassandra, resources.keyspace)


@pytest.fixture
def database_url(endpoints: Endpoints) -> Iterator[str]:
    """The URL of a PostgreSQL database of this test's own, dropped afterwards."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
    yield urlsplit(endpoints.database_url)._replace(path=f"/{name}").geturl()
    with psycopg.connect(endpoints.database_url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
