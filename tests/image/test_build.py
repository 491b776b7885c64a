"""The platform's image, built as `make image` builds it, unpacked and run: each process
starts inside its root filesystem, as its own user, against the local stack."""

from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2
import pytest
from confluent_kafka.admin import AdminClient

from peaceland.image.build import ENTRYPOINTS, UID, BuiltImage, build_image, contained, unpack
from peaceland.node.launch import credential_files, local_credentials
from peaceland.stack import Endpoints, Stack
from peaceland.stack.processes import free_port
from peaceland.tenants.environment import consumer_environment, env_name
from peaceland.tenants.forces import ForceResources, consumer_group
from peaceland.tenants.kafka import client_config
from tests.operator.kube_helpers import ROOT

pytestmark = pytest.mark.servers

#: What a compiler or a package manager leaves on PATH; none may be in the image.
_TOOLS = ("gcc", "cc", "c++", "g++", "clang", "make", "apt", "apt-get", "pip", "pip3")


@pytest.fixture(scope="module")
def built(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[BuiltImage]:
    folder = tmp_path_factory.mktemp("image")
    yield build_image(ROOT, stack.settings.cache_dir, folder / "p.oci.tar", print)
    shutil.rmtree(folder)  # 200 MB


@pytest.fixture(scope="module")
def rootfs(built: BuiltImage, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = tmp_path_factory.mktemp("unpacked")
    yield unpack(built.archive, folder / "bundle", print)
    shutil.rmtree(folder)  # 570 MB


def test_a_second_build_of_the_same_tree_gives_the_same_image(
    built: BuiltImage, stack: Stack, tmp_path: Path
) -> None:
    # Built under another umask: modes in the image never depend on who builds it.
    umask = os.umask(0o077)
    try:
        again = build_image(ROOT, stack.settings.cache_dir, tmp_path / "again.oci.tar", print)
    finally:
        os.umask(umask)
    assert again.layers == built.layers
    assert again.digest == built.digest
    assert again.archive.read_bytes() == built.archive.read_bytes()


def test_the_image_runs_as_its_own_user_with_python_311_and_no_compiler(
    built: BuiltImage, rootfs: Path
) -> None:
    config = json.loads((rootfs.parent / "config.json").read_text())
    assert config["process"]["user"]["uid"] == UID
    assert config["process"]["user"]["gid"] == UID
    assert config["process"]["args"] == ["python", "-m", ENTRYPOINTS["gateway"]]
    assert f"peaceland:x:{UID}:{UID}:" in (rootfs / "etc" / "passwd").read_text()
    folders = ("usr/bin", "usr/sbin", "usr/local/bin", "opt/peaceland/bin")
    # lexists: a link is judged inside the image, never followed to the host's file.
    found = [f"{d}/{t}" for d in folders for t in _TOOLS if os.path.lexists(rootfs / d / t)]
    assert found == []
    assert list((rootfs / "usr" / "lib").glob("gcc*/**/cc1")) == []
    assert os.readlink(rootfs / "opt/peaceland/bin/python").endswith("python3.11")
    assert (rootfs / "usr/bin/python3.11").is_file()
    assert not list((rootfs / "opt/peaceland/lib/python3.11/site-packages").glob("pip"))
    assert (rootfs / "opt/peaceland/lib/python3.11/site-packages/peaceland/api/dashboard"
            / "static/app.js").is_file()  # fmt: skip
    # Installed as root, read by all, written by none but root; no setuid program; nothing
    # of the build machine's.
    for path in [rootfs / "opt", *(rootfs / "opt").rglob("*")]:
        info = path.lstat()
        if not stat.S_ISLNK(info.st_mode):
            assert info.st_uid == 0, path
            assert info.st_mode & 0o022 == 0, path
            assert info.st_mode & 0o444 == 0o444, path
    setuid = [p for p in rootfs.rglob("*")
              if p.is_file() and not p.is_symlink() and p.stat().st_mode & 0o6000]  # fmt: skip
    assert setuid == []
    assert not os.path.lexists(rootfs / "etc/hostname")
    assert (
        not (rootfs / "etc/resolv.conf").is_file()
        or (rootfs / "etc/resolv.conf").stat().st_size == 0
    )
    assert built.base_packages > 50


def _owned(folder: Path, env: dict[str, str], rootfs: Path) -> dict[str, str]:
    """Credential files made for the image's user, and ``env`` as seen inside."""
    for path in [folder, *folder.rglob("*")]:
        os.chown(path, UID, UID)
    host = str(rootfs)
    return {k: v.replace(host, "", 1) if v.startswith(host) else v for k, v in env.items()}


@pytest.fixture
def run_inside(rootfs: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def _start(rootfs: Path, module: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            contained(rootfs, ["python", "-m", module]),
            env={"PATH": "/opt/peaceland/bin:/usr/bin:/bin", "HOME": "/nonexistent", **env},
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def _start_as(
    rootfs: Path, role: str, force: ForceResources, env: dict[str, str], stack: Stack, log: Path
) -> subprocess.Popen[bytes]:
    """``role``'s process of ``force`` inside the image, signed in as the force's principal
    for that role (its files made for the image's user, as a mounted Secret's)."""
    endpoints = stack.endpoints()
    credentials = local_credentials(endpoints, force.force_id, stack.settings.state_dir)
    folder = rootfs / "run" / "secrets" / f"{force.force_id}-{role}"
    env = env | credential_files(folder, credentials, role, cassandra=role != "gateway")
    return _start(rootfs, ENTRYPOINTS[role], _owned(folder, env, rootfs), log)


def test_the_gateway_answers_readyz_from_inside_the_image(
    rootfs: Path,
    force: ForceResources,
    endpoints: Endpoints,
    stack: Stack,
    run_inside: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    port = free_port()
    env = {
        "KAFKA_BOOTSTRAP_SERVERS": endpoints.kafka_bootstrap_servers,
        env_name("gateway", "port"): str(port),
    }
    process = _start_as(rootfs, "gateway", force, env, stack, tmp_path / "log")
    run_inside.append(process)
    deadline = time.monotonic() + 60
    answer = None
    while time.monotonic() < deadline and process.poll() is None:
        try:
            answer = httpx2.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if answer.status_code == 200:
                break
        except httpx2.TransportError:
            pass
        time.sleep(0.5)
    log = (tmp_path / "log").read_text(errors="replace")
    assert answer is not None, log
    assert answer.status_code == 200, log
    assert answer.json() == {"status": "ready"}
    # It is the image's user, not root, that runs it.
    [pid] = subprocess.run(
        ["pgrep", "-f", "-s", str(process.pid), "peaceland.services.gateway"],
        capture_output=True, text=True, check=True,
    ).stdout.split()[-1:]  # fmt: skip
    status = Path(f"/proc/{pid}/status").read_text()
    assert f"Uid:\t{UID}\t{UID}" in status


@pytest.mark.parametrize("consumer", ["archiver", "alerter"])
def test_a_consumer_inside_the_image_joins_its_group(
    consumer: str,
    rootfs: Path,
    force: ForceResources,
    endpoints: Endpoints,
    stack: Stack,
    run_inside: list[subprocess.Popen[bytes]],
    tmp_path: Path,
) -> None:
    env = consumer_environment(
        consumer,
        force.force_id,
        kafka_bootstrap_servers=endpoints.kafka_bootstrap_servers,
        cassandra_contact_points=endpoints.cassandra_contact_points,
        metrics_port=free_port(),
        cassandra_local_dc=endpoints.cassandra.local_dc,
    )
    process = _start_as(rootfs, consumer, force, env, stack, tmp_path / "log")
    run_inside.append(process)
    admin = AdminClient(client_config(endpoints.kafka))
    group = consumer_group(force.force_id, consumer)
    deadline = time.monotonic() + 90
    state = ""
    while time.monotonic() < deadline and process.poll() is None:
        listed = admin.list_consumer_groups(request_timeout=10).result()
        state = next((str(g.state) for g in listed.valid if g.group_id == group), "")
        if state.endswith("STABLE"):
            break
        time.sleep(0.5)
    assert state.endswith("STABLE"), (tmp_path / "log").read_text(errors="replace")


@pytest.mark.parametrize("process", sorted(ENTRYPOINTS))
def test_every_entrypoint_starts_inside_the_image_and_names_a_missing_setting(
    process: str, rootfs: Path
) -> None:
    """With no setting at all, each process loads everything it imports (a library the
    image lacks shows here) and stops on its settings with a clear message."""
    env = {
        "PATH": "/opt/peaceland/bin:/usr/bin:/bin",
        "HOME": "/nonexistent",
        # A secret given beside the missing settings is never printed with them.
        "KAFKA_PASSWORD": "hunter2-kafka-password",
        "PEACELAND_API_GATEWAY_TOKEN": "hunter2-gateway-token",
    }
    result = subprocess.run(
        contained(rootfs, ["python", "-m", ENTRYPOINTS[process]]),
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    output = result.stdout + result.stderr
    for broken in ("ImportError", "ModuleNotFoundError", "cannot open shared object file"):
        assert broken not in output
    assert result.returncode != 0, output
    assert "Traceback" not in output, output
    assert "Field required" in output, output
    assert "hunter2" not in output
