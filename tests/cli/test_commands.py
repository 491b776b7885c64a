"""The peaceland commands as a user runs them, on the session's stack."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cassandra.cluster import Session
from confluent_kafka.admin import AdminClient

from peaceland.analytics.lake import ArrowStorage, delete_force_lake, open_storage
from peaceland.analytics.mirror import Mirror
from peaceland.analytics.sql import run_query
from peaceland.analytics.stats import ForceLake
from peaceland.loadgen.verify import ALERT_STAGES
from peaceland.node.platform import LocalPlatform
from peaceland.operator import manifests
from peaceland.stack import Endpoints, Stack
from peaceland.stack.kube import KubeApiServer
from peaceland.tenants.forces import ForceResources, resources_for
from tests.kafka_helpers import wait_until

pytestmark = pytest.mark.timeout(300)


def peaceland(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "peaceland.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "COLUMNS": "200"},
    )


@pytest.fixture
def local_platform(stack: Stack, kubernetes: KubeApiServer) -> Iterator[LocalPlatform]:
    """The demo's operator and node, stopped afterwards with the consumers they ran."""
    # The demo's force is Retain: its lake outlives it (a Delete force's goes with it).
    platform = LocalPlatform(stack, manifests.definitions(), lake_on_store=True)
    delete_force_lake(_store_lake(stack, platform), "demo-test")
    yield platform
    if platform.operator.alive():  # its finalizer lets the force go, then the consumers stop
        platform.kubectl("delete", "policeforce", "demo-test", "-n", platform.namespace,
                         "--ignore-not-found", "--timeout=60s")  # fmt: skip
    platform.stop()


def test_the_demo_makes_its_force_through_kubernetes_shows_alerts_and_reads_reports_back(
    local_platform: LocalPlatform, tmp_path: Path
):
    # The force's topics outlive it (its deletion policy keeps them): earlier runs' reports
    # are read again into the lake; this run's are the ones stamped since it began.
    began = (datetime.now(UTC) - timedelta(minutes=2)).replace(tzinfo=None)
    result = peaceland(
        "demo", "--force", "demo-test", "--duration", "12", "--rate", "100", "--threshold", "30"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "sold the police force demo-test on the plan demo through the control plane" in (
        result.stderr
    )
    assert "police force demo-test: Ready" in result.stderr
    assert "registered through the control plane, each with a key of its own" in result.stderr
    # Where the force's officers watch it, and as whom (the password stays in its file).
    assert "its live alert dashboard: http://127.0.0.1:8090/dashboard/" in result.stderr
    officer = local_platform.stack.settings.state_dir / "credentials" / "demo-test-officer-password"
    assert "officer@demo-test.peaceland.local" in result.stderr
    assert str(officer) in result.stderr
    assert officer.read_text() not in result.stderr
    assert "ALERT" in result.stderr
    summary = next(line for line in result.stderr.splitlines() if "read back" in line)
    accepted = int(summary.split("✓ ")[1].split(" of ")[0])
    assert accepted > 500
    assert f"{accepted} read back from Cassandra" in summary
    # The force's lake consumer (a Deployment the operator rendered, run by the node) keeps
    # every accepted report in the lake on the stack's S3 store too, once each, within its
    # flush interval, signed in as the force's own user of the store.
    mirror = Mirror(_store_lake(local_platform.stack, local_platform), tmp_path)

    def in_lake() -> int:
        with ForceLake(mirror.snapshot("demo-test"), "demo-test") as force_lake:
            found = run_query(
                force_lake,
                "SELECT count(*), count(DISTINCT report_id) FROM reports "
                f"WHERE timestamp >= TIMESTAMP '{began:%Y-%m-%d %H:%M:%S}'",
            )
        rows, distinct = found.rows[0]
        assert rows == distinct, f"{rows - distinct} reports doubled in the lake"
        return int(rows)

    wait_until(lambda: in_lake() >= accepted, 60, "the demo's reports reaching the lake")
    assert in_lake() == accepted
    # And `peaceland stats` reads it there by default, as the store's administrator.
    done = peaceland("stats", "coverage", "--force", "demo-test", "--format", "json")
    assert done.returncode == 0, done.stderr
    assert sum(row["reports"] for row in json.loads(done.stdout)) >= accepted


def _store_lake(stack: Stack, platform: LocalPlatform) -> ArrowStorage:
    """The local platform's lake on the stack's S3 store, as its administrator sees it."""
    store = stack.endpoints().s3
    assert store is not None
    assert platform.lake_uri is not None
    storage = open_storage(platform.lake_uri, s3_keys=(store.access_key, store.secret_key))
    assert isinstance(storage, ArrowStorage)
    return storage


def test_stack_up_with_kubernetes_prints_what_makes_kubectl_work(kubernetes: KubeApiServer):
    result = peaceland("stack", "up", "--kubernetes")
    assert result.returncode == 0, result.stderr[-3000:]
    exports = dict(
        line.removeprefix("export ").split("=", 1)
        for line in result.stdout.splitlines()
        if line.startswith("export ")
    )
    kubectl = exports["PATH"].split(":")[0] + "/kubectl"
    answer = subprocess.run(
        [kubectl, "--kubeconfig", exports["KUBECONFIG"], "get", "namespace", "default"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr
    assert "Active" in answer.stdout


def test_stack_status_says_where_the_administrators_passwords_are(stack: Stack):
    result = peaceland("stack", "status")
    assert result.returncode == 0, result.stderr[-3000:]
    folder = stack.settings.state_dir / "credentials"
    text = " ".join((result.stdout + result.stderr).split())
    assert f"{folder}/kafka-admin-password" in text.replace("\n", "")
    password = (folder / "kafka-admin-password").read_text().strip()
    assert password not in result.stdout + result.stderr
    assert (folder / "kafka-admin-password").stat().st_mode & 0o777 == 0o600


def test_simulate_straight_to_kafka_prints_its_ground_truth(
    force: ForceResources, endpoints: Endpoints
):
    result = peaceland(
        "simulate",
        "--force",
        force.force_id,
        "--via",
        "kafka",
        "--reports",
        "2000",
        "--rate",
        "2000",
        "--low-share",
        "0.05",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    truth = json.loads(result.stdout)
    assert truth["reports_sent"] == truth["reports_accepted"] == 2000
    assert 50 <= truth["low_score_sightings"] <= 150  # 5 % of 2,000, give or take chance


def test_simulate_through_the_gateway_needs_a_drone_key():
    result = peaceland("simulate", "--reports", "10")
    assert result.returncode == 1
    assert "--drone-key" in result.stderr


def test_the_pipeline_benchmark_prints_its_figures_as_json(stack: Stack, tmp_path: Path):
    chart = tmp_path / "lag.svg"
    result = peaceland(
        "bench", "pipeline", "--reports", "1000", "--rate", "250", "--lag-chart", str(chart)
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["reports_accepted"] == figures["reports_stored"] == 1000
    assert figures["lost"] == figures["duplicates"] == 0
    assert figures["alerts_raised"] == figures["alerts_expected"]
    assert set(figures["alert_latency_ms"]) == {"p50", "p95", "p99", "max"}
    stages = figures["alert_stages_ms"]
    assert list(stages) == list(ALERT_STAGES)
    assert stages["request_to_visible"]["p50"] > stages["alert_record_to_visible"]["p50"] > 0
    cpu = figures["cpu"]
    assert {"simulator", "gateway", "archiver", "alerter", "kafka", "cassandra"} <= set(cpu)
    assert cpu["all"]["seconds"] == pytest.approx(
        sum(c["seconds"] for name, c in cpu.items() if name != "all"), abs=0.05
    )
    assert cpu["archiver"]["seconds"] > 0
    lag = figures["lag"]
    assert len(lag) >= 3  # a sample a second over a run of four seconds or more
    assert [s["seconds"] for s in lag] == sorted(s["seconds"] for s in lag)
    ends = [s["end_offset"] for s in lag]
    assert ends == sorted(ends)  # the topic only grows
    assert figures["lag_judged"] is False  # four seconds of sending: too short to judge
    assert chart.read_text().count("<polyline") == 2
    assert figures["stored_bytes_per_report"] > 0


def test_the_limits_benchmark_prints_each_servers_limit_and_the_pipelines_climb(
    stack: Stack, kafka_admin: AdminClient, cassandra: Session
):
    result = peaceland(
        "bench", "limits", "--kafka-records", "2000", "--cassandra-reports", "300",
        "--rates", "100", "--seconds", "3", "--refine", "0",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["kafka_producer"]["records"] == figures["kafka_consumer"]["records"] == 2000
    for way in ("cassandra_one_request_per_row", "cassandra_archiver_writer"):
        assert figures[way]["reports"] == 300
        assert figures[way]["rows"] >= 600  # a row and an id each, and their sightings
    climbed = figures["pipeline"]
    (run,) = climbed["runs"]
    assert run["rate_target_rps"] == 100
    assert run["lossless"] is True
    assert run["lost"] == run["duplicates"] == 0
    kept_up = climbed["highest_rate_kept_up"]
    assert kept_up in (None, 100)
    producer = figures["kafka_producer"]["records_per_s"]
    expected = None if kept_up is None else round(kept_up / producer, 3)
    assert figures["ratios"]["pipeline_to_kafka_producer"] == expected
    scratch = resources_for(figures["scratch_force"])
    pipeline_force = resources_for(run["force"])
    topics = kafka_admin.list_topics(timeout=10).topics
    assert not [t for t in (*scratch.topics, *pipeline_force.topics) if t in topics]
    cassandra.cluster.refresh_schema_metadata()
    keyspaces = cassandra.cluster.metadata.keyspaces
    assert scratch.keyspace not in keyspaces
    assert pipeline_force.keyspace not in keyspaces


def test_limits_refuses_a_ladder_it_cannot_climb_before_measuring_anything():
    result = peaceland("bench", "limits", "--rates", "2000,1000")
    assert result.returncode == 1
    assert "positive and ascending" in result.stderr
    assert "Kafka's own producer" not in result.stderr


def test_the_operator_benchmark_prints_apply_to_ready_figures_and_cleans_up(
    kubernetes: KubeApiServer, kafka_admin: AdminClient
):
    result = peaceland("bench", "operator", "--forces", "2")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    for mode in ("one_by_one_seconds", "all_at_once_seconds"):
        assert 0 < figures[mode]["min"] <= figures[mode]["p50"] <= figures[mode]["max"]
    bench_force = re.compile(r"^peaceland\.(bench|burst)-[0-9a-f]{8}-\d+\.")
    assert not [t for t in kafka_admin.list_topics(timeout=10).topics if bench_force.match(t)]


def test_the_api_benchmark_prints_revocation_and_route_figures_and_cleans_up(
    kubernetes: KubeApiServer, kafka_admin: AdminClient
):
    result = peaceland("bench", "api", "--rounds", "2", "--requests", "10", "--rate", "50")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    revoked = figures["revoked_key_refused_after_seconds"]
    assert revoked["count"] == 2
    assert 0 < revoked["p50"] <= revoked["max"]
    assert figures["route_latency_ms"]["GET /v1/forces/{id}"]["count"] == 10
    assert figures["load_during_route_timing"]["reports_accepted"] > 0
    bench_force = re.compile(r"^peaceland\.bench-[0-9a-f]{6}\.")
    assert not [t for t in kafka_admin.list_topics(timeout=10).topics if bench_force.match(t)]


def test_the_dashboard_benchmark_prints_latencies_measured_in_a_browser_and_cleans_up(
    kubernetes: KubeApiServer, kafka_admin: AdminClient
):
    result = peaceland("bench", "dashboard", "--probes", "5", "--rate", "20")
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["alerts"] == 5
    latency = figures["latency_ms"]
    assert 0 < latency["p50"] <= latency["max"]
    hops = figures["hops_ms"]
    assert set(hops) == {
        "gateway_to_raised",
        "raised_to_received",
        "received_to_drawn",
        "raised_to_plain_http_client",
    }
    assert all(hop["max"] is not None for hop in hops.values())
    # The page draws what it received: never before.
    assert 0 <= hops["received_to_drawn"]["p50"] <= hops["received_to_drawn"]["max"]
    assert figures["background_load"]["reports_accepted"] > 0
    bench_force = re.compile(r"^peaceland\.bench-[0-9a-f]{6}\.")
    assert not [t for t in kafka_admin.list_topics(timeout=10).topics if bench_force.match(t)]


def test_the_map_benchmark_prints_the_pages_frames_with_a_fleet_and_a_history(
    kubernetes: KubeApiServer, kafka_admin: AdminClient
):
    result = peaceland(
        "bench", "map", "--drones", "5", "--history", "150", "--rate", "10", "--seconds", "2"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    figures = json.loads(result.stdout)
    assert figures["alerts_raised_before"] >= 150
    assert figures["alerts_on_map"] >= 150
    for phase in ("while_loading", "while_drones_move", "while_dragging_and_zooming"):
        assert figures[phase]["frames"] > 0
        assert 0 <= figures[phase]["main_thread_in_long_tasks_share"] <= 1
    bench_force = re.compile(r"^peaceland\.bench-[0-9a-f]{6}\.")
    assert not [t for t in kafka_admin.list_topics(timeout=10).topics if bench_force.match(t)]


def test_the_decode_benchmark_prints_its_rate():
    result = peaceland("bench", "decode", "--reports", "2000", "--rounds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads(result.stdout)["reports_per_second_per_core"] > 0


def test_the_demo_without_kubernetes_provisions_the_force_directly(stack: Stack):
    result = peaceland(
        "demo", "--no-kubernetes", "--force", "demo-direct", "--duration", "8", "--rate", "100"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "topics of demo-direct" in result.stderr
    summary = next(line for line in result.stderr.splitlines() if "read back" in line)
    accepted = int(summary.split("✓ ")[1].split(" of ")[0])
    assert f"{accepted} read back from Cassandra" in summary


def test_ctrl_c_stops_the_demo_and_still_reads_every_report_back(
    local_platform: LocalPlatform,
):
    demo = subprocess.Popen(
        [sys.executable, "-m", "peaceland.cli", "demo", "--force", "demo-test", "--rate", "100"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "COLUMNS": "200"},
    )
    lines: list[str] = []
    try:
        assert demo.stderr is not None
        for line in demo.stderr:  # until the drones fly, however long set-up takes
            lines.append(line)
            if "simulated drones are reporting" in line:
                break
        time.sleep(5)
        demo.send_signal(signal.SIGINT)
        _, rest = demo.communicate(timeout=120)
    finally:
        demo.kill()
    err = "".join(lines) + rest
    assert demo.returncode == 0, err[-3000:]
    assert "stopping the demo force" in err
    summary = next(line for line in err.splitlines() if "read back" in line)
    accepted = int(summary.split("✓ ")[1].split(" of ")[0])
    assert accepted > 0
    assert f"{accepted} read back from Cassandra" in summary
