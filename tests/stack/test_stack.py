"""The local stack: reuse, clear failures, and stopping exactly what it started."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pyarrow.fs as pafs
import pytest
from pydantic import ValidationError

from peaceland.stack import Stack, StackError, StackSettings, fetch, processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def isolated(tmp_path: Path, **overrides: object) -> StackSettings:
    """Settings of a second stack beside the session's: own state, own ports, shared cache."""
    ports = {
        "kafka_port": free_port(),
        "kafka_controller_port": free_port(),
        "cassandra_port": free_port(),
        "cassandra_storage_port": free_port(),
        "cassandra_jmx_port": free_port(),
        "postgres_port": free_port(),
    }
    return StackSettings(state_dir=tmp_path / "state").model_copy(update=ports | overrides)


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    proc = subprocess.Popen(["sleep", "300"])
    yield proc
    proc.kill()
    proc.wait()


def test_every_server_of_the_session_stack_is_healthy(stack: Stack):
    statuses = stack.status()
    names = [s.name for s in statuses]
    # etcd and kube-apiserver are listed when they run (they start only when asked for).
    assert names[:4] == ["kafka", "cassandra", "postgres", "s3"]
    assert names[4:] in ([], ["etcd", "kube-apiserver"])
    assert all(s.healthy for s in statuses), statuses


def test_the_kubernetes_servers_start_only_when_asked_for(tmp_path: Path):
    own = Stack(isolated(tmp_path))
    assert [s.name for s in own.status()] == ["kafka", "cassandra", "postgres", "s3"]
    assert own.endpoints().kubeconfig is None


def test_a_second_up_reuses_the_servers_and_fetches_nothing(stack: Stack, monkeypatch):
    # With Maven gone from PATH, any attempt to fetch would fail loudly.
    monkeypatch.setattr(shutil, "which", lambda _name: None)
    assert stack.up() == []


def test_a_taken_port_names_the_server_and_the_port(tmp_path: Path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        taken = sock.getsockname()[1]
        stack = Stack(isolated(tmp_path, kafka_port=taken))
        with pytest.raises(StackError, match=f"cannot start kafka: port {taken} .* is taken"):
            stack.up(["kafka"])


def test_a_server_that_dies_during_start_up_is_reported_with_its_log(tmp_path: Path, stack: Stack):
    broken = Stack(isolated(tmp_path, cassandra_heap="1m"))
    with pytest.raises(StackError, match="cassandra exited during start-up; its log is") as info:
        broken.up(["cassandra"])
    assert "heap" in str(info.value).lower()


def test_down_stops_exactly_what_up_started(tmp_path: Path, stack: Stack):
    own = Stack(isolated(tmp_path))
    assert own.up(["kafka"]) == ["kafka"]
    pid = own.server("kafka").pid()
    assert pid is not None
    assert own.status()[0].healthy
    assert own.down() == ["kafka"]
    assert processes.tracked(own.server("kafka").pid_file) is None
    with pytest.raises(ProcessLookupError):
        _signal_zero_unless_zombie(pid)
    # The session's own stack is untouched.
    assert all(s.healthy for s in stack.status())


def _signal_zero_unless_zombie(pid: int) -> None:
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists() and stat.read_text().split(") ")[1].startswith("Z"):
        raise ProcessLookupError(pid)  # dead, waiting only to be reaped by its parent
    os.kill(pid, 0)


def test_stop_never_kills_a_process_that_reused_a_recorded_pid(tmp_path: Path, sleeper):
    pid_file = tmp_path / "server.pid"
    processes.track(pid_file, sleeper.pid)
    record = pid_file.read_text().replace('"start_time": ', '"start_time": 1')
    pid_file.write_text(record)  # the same pid, started at another time: not ours
    assert processes.stop(pid_file, timeout=1) is False
    assert sleeper.poll() is None


def test_stop_ends_the_recorded_process(tmp_path: Path):
    pid_file = tmp_path / "server.pid"
    pid = processes.spawn(["sleep", "300"], log_file=tmp_path / "log", pid_file=pid_file)
    assert processes.tracked(pid_file) is not None
    assert processes.stop(pid_file, timeout=5) is True
    assert processes.tracked(pid_file) is None
    assert not pid_file.exists()
    del pid


def test_an_external_server_is_checked_never_started(tmp_path: Path, stack: Stack, monkeypatch):
    endpoints = stack.endpoints()
    # An external Kafka is signed in to with the environment's credentials, as a user
    # pointing the platform at a managed cluster gives them.
    for name in ("KAFKA_USERNAME", "KAFKA_PASSWORD_FILE"):
        monkeypatch.setenv(name, endpoints.environment()[name])
    kafka = endpoints.kafka_bootstrap_servers
    own = Stack(isolated(tmp_path).model_copy(update={"kafka_bootstrap_servers": kafka}))
    assert own.up(["kafka"]) == []
    [status] = [s for s in own.status() if s.name == "kafka"]
    assert status.external
    assert status.healthy
    assert status.pid is None


def test_an_unreachable_external_server_is_unhealthy_with_a_reason(tmp_path: Path):
    own = Stack(
        isolated(tmp_path).model_copy(
            update={"database_url": f"postgresql://u:p@127.0.0.1:{free_port()}/db"}
        )
    )
    started = time.monotonic()
    [status] = [s for s in own.status() if s.name == "postgres"]
    assert not status.healthy
    assert "no connection" in status.detail
    assert time.monotonic() - started < 30


def test_external_servers_come_from_the_usual_variables(monkeypatch):
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-0.example:9092")
    monkeypatch.setenv("CASSANDRA_CONTACT_POINTS", "cass-0.example:9042")
    monkeypatch.setenv("DATABASE_URL", "postgresql://app@db.example/peaceland")
    endpoints = Stack(StackSettings()).endpoints()
    assert endpoints.kafka_bootstrap_servers == "kafka-0.example:9092"
    assert endpoints.cassandra_contact_points == "cass-0.example:9042"
    assert endpoints.database_url == "postgresql://app@db.example/peaceland"


def test_a_bad_setting_fails_fast_naming_it(monkeypatch):
    monkeypatch.setenv("PEACELAND_CASSANDRA_HEAP", "lots")
    with pytest.raises(ValidationError, match="cassandra_heap"):
        StackSettings()


def test_a_missing_jdk_says_how_to_install_one():
    with pytest.raises(StackError, match=r"no JDK 99 found.*apt-get install"):
        fetch.find_java(99, None)


def test_down_also_stops_the_processes_of_forces(tmp_path: Path):
    own = Stack(isolated(tmp_path))
    pid_file = own.settings.state_dir / "services" / "demo-archiver.pid"
    processes.spawn(["sleep", "300"], log_file=tmp_path / "log", pid_file=pid_file)
    assert processes.tracked(pid_file) is not None
    assert own.down() == ["demo-archiver"]
    assert processes.tracked(pid_file) is None


def test_the_object_stores_filer_refuses_unsigned_requests_and_s3_a_wrong_key(stack: Stack):
    """Its filer's own HTTP API (beside the S3 gateway) refuses unsigned reads and writes,
    and its S3 API a wrong secret. (Its master's HTTP API and the gRPC ports still take any
    local caller: docs/analytics.md, "The stack's store".)"""
    filer = f"http://{stack.settings.host}:{stack.settings.s3_port + 3}"
    for request in (
        urllib.request.Request(f"{filer}/buckets/peaceland-lake/"),
        urllib.request.Request(
            f"{filer}/buckets/peaceland-lake/planted.txt", data=b"planted", method="PUT"
        ),
    ):
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()
        assert refused.value.code == 401
    access = stack.endpoints().s3
    assert access is not None
    wrong = pafs.S3FileSystem(
        access_key=access.access_key,
        secret_key="not-the-secret",
        endpoint_override=f"{stack.settings.host}:{stack.settings.s3_port}",
        scheme="http",
        region=access.region,
    )
    with pytest.raises(OSError, match=r"(?i)signature|denied|forbidden"):
        wrong.get_file_info(pafs.FileSelector(access.bucket, recursive=False))
    assert (stack.settings.state_dir / "s3" / "data").stat().st_mode & 0o077 == 0
