"""The control plane on real servers: a PostgreSQL database of each test's own, migrated;
the real kube-apiserver with the PoliceForce CRD, in a namespace of each test's own."""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from peaceland.api.app import bootstrap_admin, create_app
from peaceland.api.db import make_engine
from peaceland.api.migrate import upgrade
from peaceland.api.settings import ApiSettings
from peaceland.services.alerter.book import AlertBook, Sighting
from peaceland.stack import Endpoints
from peaceland.stack.kube import KubeApiServer
from peaceland.stack.processes import free_port
from peaceland.tenants.forces import ForceResources, resources_for, sighting_bucket
from peaceland.tenants.provisioning.identities import (
    ForceCredentials,
    ensure_identities,
    retire_generations,
)
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics
from peaceland.tenants.reports import Citizen
from peaceland.tenants.workloads import credentials_secret
from tests.factories import make_report
from tests.operator.kube_helpers import Kubectl

ADMIN_EMAIL = "admin@peaceland.test"


@dataclass
class Api:
    """The control plane under test, and what a test needs to speak to it."""

    app: FastAPI
    client: TestClient
    settings: ApiSettings
    engine: Engine
    admin_password: str
    gateway_token: str
    _admin: dict[str, str] = field(default_factory=dict)

    def login(self, email: str, password: str) -> dict[str, str]:
        answer = self.client.post("/v1/auth/token", json={"email": email, "password": password})
        assert answer.status_code == 200, answer.text
        return {"Authorization": f"Bearer {answer.json()['access_token']}"}

    @property
    def admin(self) -> dict[str, str]:
        if not self._admin:
            self._admin.update(self.login(ADMIN_EMAIL, self.admin_password))
        return self._admin

    @property
    def gateway(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.gateway_token}"}

    def plan(self, plan_id: str | None = None, **limits: Any) -> dict[str, Any]:
        body = {
            "id": plan_id or f"p-{uuid.uuid4().hex[:8]}",
            "display_name": "Test plan",
            "max_drones": 5,
            "max_reports_per_second": 100,
            "min_retention_days": 7,
            "max_retention_days": 90,
            "max_partitions": 6,
            "max_consumer_replicas": 2,
            "monthly_price_cents": 100_000,
            "price_per_million_reports_cents": 500,
            **limits,
        }
        answer = self.client.post("/v1/plans", json=body, headers=self.admin)
        assert answer.status_code == 201, answer.text
        return dict(answer.json())

    def force(self, plan_id: str, force_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {
            "id": force_id or f"f-{uuid.uuid4().hex[:8]}",
            "display_name": "Test force",
            "plan_id": plan_id,
            "deletion_policy": "Delete",
            **fields,
        }
        answer = self.client.post("/v1/forces", json=body, headers=self.admin)
        assert answer.status_code == 202, answer.text
        return dict(answer.json())

    def member(
        self, force_id: str, role: str, headers: dict[str, str] | None = None
    ) -> dict[str, str]:
        """A new person with ``role`` in the force, signed in: their headers."""
        email = f"{role}-{uuid.uuid4().hex[:6]}@{force_id}.test"
        answer = self.client.post(
            f"/v1/forces/{force_id}/members",
            json={"email": email, "display_name": role.title(), "role": role},
            headers=headers or self.admin,
        )
        assert answer.status_code == 201, answer.text
        return self.login(email, answer.json()["initial_password"])


def made_with_kubectl(
    name: str, display_name: str = "By hand", drones: int = 3, reports_per_second: int = 9
) -> dict[str, Any]:
    """A PoliceForce as a person applies it with kubectl: no plan annotation, few fields."""
    return {
        "apiVersion": "peaceland.io/v1alpha1",
        "kind": "PoliceForce",
        "metadata": {"name": name},
        "spec": {
            "displayName": display_name,
            "plan": {"maxDrones": drones, "maxReportsPerSecond": reports_per_second},
        },
    }


@dataclass(frozen=True)
class Provisioned:
    """A force provisioned on the real servers as the operator would (topics, keyspace,
    identities, its credentials Secret, its status), without an operator running."""

    resources: ForceResources
    credentials: ForceCredentials
    uid: str


def provision(
    force_id: str,
    kubectl: Kubectl,
    namespace: str,
    kafka_admin: AdminClient,
    cassandra: Session,
    *,
    manifest: dict[str, Any] | None = None,
) -> Provisioned:
    """Provision ``force_id`` (its resource applied from ``manifest`` unless it exists)."""
    if manifest is not None:
        kubectl.apply(manifest, namespace)
    uid = kubectl.force(force_id, namespace)["metadata"]["uid"]
    resources = resources_for(force_id)
    ensure_topics(kafka_admin, resources, TopicSettings(partitions=2))
    ensure_keyspace(cassandra, resources.keyspace, Replication())
    credentials = ForceCredentials.generate(force_id, 1)
    ensure_identities(kafka_admin, cassandra, credentials)
    kubectl.apply(credentials_secret(force_id, uid, credentials), namespace)
    status = {"status": {"phase": "Ready", "keyspace": resources.keyspace}}
    kubectl("patch", "policeforce", force_id, "-n", namespace, "--subresource=status",
            "--type=merge", "-p", json.dumps(status))  # fmt: skip
    return Provisioned(resources, credentials, uid)


def unprovision(provisioned: Provisioned, kafka_admin: AdminClient, cassandra: Session) -> None:
    force_id = provisioned.resources.force_id
    retire_generations(kafka_admin, cassandra, force_id, keep=None)
    delete_topics(kafka_admin, provisioned.resources)
    drop_keyspace(cassandra, provisioned.resources.keyspace)


@pytest.fixture
def forces(
    api: Api, kubectl: Kubectl, namespace: str, kafka_admin: AdminClient, cassandra: Session
) -> Iterator[tuple[Provisioned, Provisioned]]:
    """Two forces made with kubectl and provisioned (see ``provision``), removed after."""
    made = []
    for _ in range(2):
        force_id = f"p-{uuid.uuid4().hex[:8]}"
        made.append(provision(force_id, kubectl, namespace, kafka_admin, cassandra,
                              manifest=made_with_kubectl(force_id)))  # fmt: skip
    yield made[0], made[1]
    for force in made:
        unprovision(force, kafka_admin, cassandra)


#: The citizen of the alerts tests raise.
WANTED = Citizen(name="Wanted Person", score=2.0)


def raise_alert(cassandra: Session, force: Provisioned, minutes_ago: float = 5) -> uuid.UUID:
    """An alert raised by the alerter's own book, with two sightings archived for it."""
    at = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=minutes_ago)
    report = make_report(random.Random(), citizens=0).model_copy(
        update={"timestamp": at, "citizens": [WANTED], "drone_id": "d-7"}
    )
    book = AlertBook(cassandra, force.resources.keyspace, force.resources.force_id)
    decision = book.decide(
        Sighting(report, WANTED, f"0/{uuid.uuid4().int % 10**6}", datetime.now(UTC)), 600
    )
    for seconds, drone in ((0, "d-7"), (60, "d-8")):
        cassandra.execute(
            f"INSERT INTO {force.resources.keyspace}.sightings_by_citizen "
            "(day, bucket, citizen, reported_at, drone_id, score) VALUES (%s, %s, %s, %s, %s, %s)",
            ((at + timedelta(seconds=seconds)).date(), sighting_bucket(WANTED.name),
             WANTED.name, at + timedelta(seconds=seconds), drone, 2.0),
        )  # fmt: skip
    if decision.event == "raised":
        book.decide(
            Sighting(report.model_copy(update={"timestamp": at + timedelta(seconds=60),
                                               "report_id": uuid.uuid4(), "drone_id": "d-8"}),
                     WANTED, "0/999999999", datetime.now(UTC)), 600,
        )  # fmt: skip
    return decision.alert_id


@pytest.fixture
def api_settings(
    database_url: str,
    kubernetes: KubeApiServer,
    namespace: str,
    tmp_path: Path,
    endpoints: Endpoints,
) -> ApiSettings:
    password_file = tmp_path / "admin-password"
    password_file.write_text(secrets.token_urlsafe(18))
    return ApiSettings(
        database_url=database_url,
        namespace=namespace,
        kubeconfig=kubernetes.kubeconfig,
        gateway_token=secrets.token_urlsafe(32),
        bootstrap_admin_email=ADMIN_EMAIL,
        bootstrap_admin_password_file=password_file,
        kafka_replication_factor=1,
        cassandra_replication_factor=1,
        # Tests sign many people in from one address; the throttle has its own test.
        sign_ins_per_minute=10_000,
        kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers,
        cassandra_contact_points=endpoints.cassandra_contact_points,
        cassandra_local_dc=endpoints.cassandra.local_dc,
        # The tests run the meter and the publisher's passes themselves.
        alert_meter_seconds=0,
        lifecycle_publish_seconds=0,
        lake_uri=str(tmp_path / "lake"),
    )


@pytest.fixture
def api(api_settings: ApiSettings) -> Iterator[Api]:
    engine = make_engine(api_settings.database_url)
    upgrade(engine)
    bootstrap_admin(api_settings, engine)
    assert api_settings.bootstrap_admin_password_file is not None
    assert api_settings.gateway_token is not None
    app = create_app(api_settings, engine=engine)
    with TestClient(app) as client:
        yield Api(
            app=app,
            client=client,
            settings=api_settings,
            engine=engine,
            admin_password=api_settings.bootstrap_admin_password_file.read_text(),
            gateway_token=api_settings.gateway_token.get_secret_value(),
        )
    engine.dispose()


@contextmanager
def serving(app: FastAPI, port: int | None = None) -> Iterator[str]:
    """``app`` served over real HTTP on a port of its own (or ``port``), in a thread; its
    URL. Leaving it closes every connection within 2 s, streams included."""
    port = port or free_port()
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            host="127.0.0.1",
            port=port,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=2,
        )
    )
    thread = threading.Thread(target=server.run, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert thread.is_alive(), "the server stopped at start"
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
