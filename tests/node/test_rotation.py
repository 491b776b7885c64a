"""A rotation of a force's credentials while its consumers run on the local node and drones
report: every report is stored, every alert raised once, and the old credentials are then
refused by Kafka and Cassandra."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from cassandra.cluster import NoHostAvailable, Session
from confluent_kafka.admin import AdminClient

from peaceland.loadgen.drivers import send_to_kafka
from peaceland.loadgen.fleet import Fleet
from peaceland.loadgen.pipeline import BENCH_ALERTING, wait_drained
from peaceland.loadgen.truth import GroundTruth
from peaceland.loadgen.verify import verify
from peaceland.loadgen.watcher import AlertWatcher
from peaceland.node.platform import LocalPlatform, demo_force
from peaceland.operator import manifests
from peaceland.stack import Endpoints, Stack
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.cassandra import connect
from peaceland.tenants.forces import ForceSettings, resources_for
from peaceland.tenants.provisioning.identities import kafka_generations
from tests.kafka_helpers import signs_in, wait_until


@pytest.fixture
def platform(stack: Stack, kubernetes: KubeApiServer) -> Iterator[LocalPlatform]:
    namespace = f"t-rot-{uuid.uuid4().hex[:8]}"
    platform = LocalPlatform(stack, manifests.definitions(), namespace=namespace)
    platform.start(lambda _: None)
    yield platform
    platform.kubectl("delete", "policeforce", "--all", "-n", namespace, "--timeout=60s")
    platform.stop()


def test_a_rotation_under_way_loses_no_report_and_then_refuses_the_old_credentials(
    platform: LocalPlatform, endpoints: Endpoints, kafka_admin: AdminClient, cassandra: Session
):
    name = f"rot-{uuid.uuid4().hex[:8]}"
    resources = resources_for(name)
    manifest = demo_force(ForceSettings(force_id=name, alerting=BENCH_ALERTING))
    manifest["spec"]["deletionPolicy"] = "Delete"
    platform.apply_force(manifest)
    platform.wait_ready(name, lambda _: None)
    old = platform.credentials(name)
    watcher = AlertWatcher(endpoints.kafka, resources.alerts_topic)
    watcher.start()
    fleet = Fleet(drones=50, seed=5, threshold=BENCH_ALERTING.score_threshold)
    sent: dict[str, GroundTruth] = {}

    def drones() -> None:  # 3,000 reports over 20 s, through the rotation
        sent["truth"] = send_to_kafka(
            fleet, kafka=endpoints.kafka, topic=resources.reports_topic, total=3000, rate=150
        )

    sender = threading.Thread(target=drones)
    sender.start()
    try:
        time.sleep(4)
        manifest["spec"]["credentials"] = {"rotation": 1}
        platform.apply_force(manifest)
        wait_until(lambda: kafka_generations(kafka_admin, name) == {1}, 120, "generation 0 retired")
    finally:
        sender.join()
    wait_drained(endpoints.kafka, resources, timeout=180)
    time.sleep(0.5)  # the last alert events reach the watcher
    watcher.stop()
    figures = verify(cassandra, resources, sent["truth"], watcher.events, endpoints.kafka)
    assert figures["reports_accepted"] == 3000
    assert figures["lost"] == 0, figures
    assert figures["alerts_raised"] == figures["alerts_expected"] > 0, figures
    assert figures["alerts_raised_twice"] == 0, figures
    assert figures["alert_events_missing"] == 0, figures
    assert platform.credentials(name).generation == 1
    archiver = old.kafka["archiver"]
    assert not signs_in(endpoints.kafka, archiver.username, archiver.password)
    with pytest.raises(NoHostAvailable):
        connect(endpoints.cassandra.as_role(old.cassandra.username, old.cassandra.password))
