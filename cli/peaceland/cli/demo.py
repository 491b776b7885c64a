"""``peaceland demo``: the platform running on this machine for a demo police force.

Brings the stack up, provisions the demo force (topics, keyspace), starts its gateway,
archiver and alerter as processes, flies a simulated fleet through the gateway and shows
every alert as it is raised, until stopped. Then it stops the force's processes, reads
every accepted report back from Cassandra and says what happened.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from confluent_kafka.admin import AdminClient

from peaceland.cli.control_plane import ControlPlane
from peaceland.loadgen.drivers import send_to_gateway
from peaceland.loadgen.fleet import Fleet, drone_ids
from peaceland.loadgen.truth import GroundTruth
from peaceland.loadgen.verify import read_back
from peaceland.loadgen.watcher import AlertWatcher
from peaceland.node.launch import SERVICES, ControlPlaneSecrets, ForceServices, local_credentials
from peaceland.stack import Stack
from peaceland.tenants.alerts import Alert
from peaceland.tenants.cassandra import CassandraAccess, connect, shutdown_session
from peaceland.tenants.forces import ForceSettings, resources_for
from peaceland.tenants.kafka import client_config
from peaceland.tenants.provisioning.identities import ForceCredentials
from peaceland.tenants.provisioning.keyspace import Replication, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, ensure_topics

Say = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class DemoSummary:
    sent: int
    accepted: int
    read_back: int
    alerts_raised: int
    alert_updates: int
    seconds: float


def provision(stack: Stack, settings: ForceSettings, say: Say) -> ForceCredentials:
    """Create the force's topics, keyspace and identities (idempotent: a second run changes
    nothing); returns the identities its processes sign in with."""
    endpoints = stack.endpoints()
    resources = resources_for(settings.force_id)
    admin = AdminClient(client_config(endpoints.kafka))
    created = ensure_topics(admin, resources, TopicSettings(partitions=6))
    say(
        f"topics of {settings.force_id}: {', '.join(resources.topics)}"
        + (" (created)" if created else " (already there)")
    )
    session = connect(endpoints.cassandra)
    try:
        applied = ensure_keyspace(
            session, resources.keyspace, Replication(), retention_days=settings.retention_days
        )
    finally:
        shutdown_session(session)
    say(
        f"keyspace of {settings.force_id}: {resources.keyspace}"
        + (f" (migrations {applied} applied)" if applied else " (schema up to date)")
    )
    credentials = local_credentials(endpoints, settings.force_id, stack.settings.state_dir)
    say(
        f"identities of {settings.force_id}: Kafka principals "
        f"{', '.join(i.username for i in credentials.kafka.values())}, Cassandra role "
        f"{credentials.cassandra.username}"
    )
    return credentials


#: The plan the demo force is sold on, made by the demo when missing.
DEMO_PLAN: Final = {
    "id": "demo",
    "display_name": "Demo",
    "max_drones": 10_000,
    "max_reports_per_second": 10_000,
    "min_retention_days": 1,
    "max_retention_days": 3_650,
    "max_partitions": 12,
    "max_consumer_replicas": 3,
    "monthly_price_cents": 0,
    "price_per_million_reports_cents": 0,
}


def through_the_api(
    api: ControlPlane, made: ControlPlaneSecrets, settings: ForceSettings, drones: int, say: Say
) -> dict[str, str]:
    """The demo force as a platform admin makes it: the demo plan, the force sold on it
    (or, made with kubectl before, adopted), Ready; then its drones registered, each with a
    key of its own. Returns the keys by drone id."""
    force_id = settings.force_id
    api.sign_in(made.admin_email, made.admin_password_file.read_text(encoding="utf-8").strip())
    api.ensure_plan(DEMO_PLAN)
    alerting = {
        "score_threshold": settings.alerting.score_threshold,
        "dedup_window_seconds": settings.alerting.dedup_window_seconds,
    }
    existing = api.force(force_id)
    if existing is None:
        api.create_force(
            {
                "id": force_id,
                "display_name": f"Demo force {force_id}",
                "plan_id": DEMO_PLAN["id"],
                "alerting": alerting,
                "retention_days": settings.retention_days,
                "partitions": 6,
            }
        )
        say(f"sold the police force {force_id} on the plan demo through the control plane")
    else:
        changes: dict[str, object] = {}
        if existing["plan_id"] is None:
            changes["plan_id"] = DEMO_PLAN["id"]
        if existing["alerting"] != alerting:
            changes["alerting"] = alerting
        if changes:
            api.change_force(force_id, changes)
        say(
            f"police force {force_id} exists"
            + (f"; changed {', '.join(changes)}" if changes else "")
        )
    seconds = api.wait_ready(force_id, say)
    say(f"{force_id} is Ready (waited {seconds:.1f}s)")
    keys = {}
    for drone in drone_ids(drones):
        api.register_drone(force_id, drone)
        keys[drone] = str(api.issue_key(force_id, drone, replace=True)["key"])
    say(f"{drones} drones registered through the control plane, each with a key of its own")
    return keys


def demo_officer(api: ControlPlane, state_dir: Path, force_id: str, say: Say) -> tuple[str, Path]:
    """The demo force's officer, who signs in to its dashboard: made once (the platform
    admin adds them), the password kept in ``<state>/credentials/`` (0600), never printed."""
    email = f"officer@{force_id}.peaceland.local"
    path = state_dir / "credentials" / f"{force_id}-officer-password"
    if not path.exists():
        added = api.add_member(force_id, email, "Demo officer", "officer")
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(str(added["initial_password"]), encoding="utf-8")
        say(f"{email} is an officer of {force_id}")
    return email, path


def drone_key(state_dir: Path, force_id: str) -> str:
    """The demo force's drone key: made once, kept in the state directory."""
    path = state_dir / "services" / f"{force_id}.drone-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(24))
        path.chmod(0o600)
    return path.read_text().strip()


def run(
    stack: Stack,
    settings: ForceSettings,
    credentials: ForceCredentials,
    *,
    drones: int,
    rate: float,
    duration: float | None,
    say: Say,
    show: Callable[[Alert], None],
    stop: threading.Event,
    consumers_elsewhere: bool = False,
    control_plane: tuple[str, Path] | None = None,
    drone_keys: Mapping[str, str] | None = None,
) -> DemoSummary:
    """Run the force until ``stop`` is set or ``duration`` seconds have passed.

    With ``consumers_elsewhere`` (the operator's Deployments run them), only the gateway
    runs here, and the consumers keep running after the demo. With ``control_plane`` (its
    URL and the gateways' token file), the gateway takes the keys the control plane issued,
    ``drone_keys`` (each drone's own); otherwise one key made here speaks for every drone.
    """
    endpoints = stack.endpoints()
    force_id = settings.force_id
    state_dir = stack.settings.state_dir
    settings_file = state_dir / "services" / f"{force_id}.json"
    settings_file.parent.mkdir(parents=True, exist_ok=True)
    settings_file.write_text(settings.model_dump_json(indent=2))
    services = ForceServices(
        endpoints,
        force_id,
        state_dir,
        drone_key=None if control_plane else drone_key(state_dir, force_id),
        credentials=credentials,
        settings_file=settings_file,
        only=("gateway",) if consumers_elsewhere else SERVICES,
        control_plane=control_plane,
    )
    services.start()
    say(
        f"gateway of {force_id} on {services.gateway_url} (docs: {services.gateway_url}/docs); "
        f"archiver and alerter running; logs in {state_dir / 'logs'}"
    )
    raised = updates = 0

    def on_event(alert: Alert) -> None:
        nonlocal raised, updates
        if alert.event == "raised":
            raised += 1
        else:
            updates += 1
        show(alert)

    watcher = AlertWatcher(endpoints.kafka, resources_for(force_id).alerts_topic, on_event=on_event)
    began = time.monotonic()
    try:
        watcher.start()
        if duration:
            threading.Timer(duration, stop.set).start()
        say(
            f"{drones} simulated drones are reporting through the gateway, {rate:g} reports/s;"
            " alerts appear below" + ("" if duration else " (Ctrl-C stops)")
        )
        fleet = Fleet(
            drones=drones, seed=int(time.time()), threshold=settings.alerting.score_threshold
        )
        truth = send_to_gateway(
            fleet,
            url=services.gateway_url,
            drone_key=drone_keys if drone_keys is not None else services.drone_key or "",
            total=None,
            rate=rate,
            batch=max(1, min(50, int(rate // 10))),
            stop=stop,
        )
        say(f"stopping: {truth.accepted} reports accepted; letting the consumers catch up")
        time.sleep(3)
    finally:
        services.stop()
        watcher.stop()
    keyspace = resources_for(force_id).keyspace
    stored = _read_back(endpoints.cassandra, keyspace, truth)
    # Consumers still running elsewhere may be finishing their last batch: give them time.
    deadline = time.monotonic() + 30
    while consumers_elsewhere and stored < truth.accepted and time.monotonic() < deadline:
        time.sleep(1)
        stored = _read_back(endpoints.cassandra, keyspace, truth)
    return DemoSummary(
        truth.sent, truth.accepted, stored, raised, updates, time.monotonic() - began
    )


def _read_back(cassandra: CassandraAccess, keyspace: str, truth: GroundTruth) -> int:
    session = connect(cassandra)
    try:
        return read_back(session, keyspace, truth)
    finally:
        shutdown_session(session)
