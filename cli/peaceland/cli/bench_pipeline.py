"""``peaceland bench pipeline``: the whole data path under load, checked against ground truth.

A fresh bench force gets its topics, keyspace and its three processes (gateway, archiver,
alerter) on this machine; the load generator drives it and checks what it made of the
reports (``peaceland.loadgen.pipeline``).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from confluent_kafka.admin import AdminClient

from peaceland.loadgen.pipeline import BENCH_ALERTING, Target, drive
from peaceland.node.launch import ForceServices, start_force_services
from peaceland.stack import Stack
from peaceland.stack.servers import Cassandra
from peaceland.tenants.cassandra import connect, shutdown_session
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import client_config
from peaceland.tenants.provisioning.keyspace import Replication, drop_keyspace, ensure_keyspace
from peaceland.tenants.provisioning.topics import TopicSettings, delete_topics, ensure_topics

Say = Callable[[str], None]


def run(
    stack: Stack,
    *,
    reports: int,
    rate: float,
    drones: int,
    seed: int,
    batch: int,
    keep: bool,
    say: Say,
    lag_every: float | None = None,
) -> dict[str, Any]:
    """The benchmark: a fresh force on the stack, driven and checked, then removed."""
    endpoints = stack.endpoints()
    force = resources_for(f"bench-{secrets.token_hex(4)}")
    admin = AdminClient(client_config(endpoints.kafka))
    session = connect(endpoints.cassandra)
    cassandra = stack.server("cassandra")
    sizes = None
    if isinstance(cassandra, Cassandra) and not cassandra.external:
        sizes = cassandra.table_bytes
    services: ForceServices | None = None
    try:
        ensure_topics(admin, force, TopicSettings(partitions=6))
        ensure_keyspace(session, force.keyspace, Replication(), retention_days=30)
        say(f"bench force {force.force_id}: topics and keyspace ready")
        services = start_force_services(
            endpoints, force, stack.settings.state_dir, BENCH_ALERTING, say
        )
        result = drive(
            Target(
                services.gateway_url,
                services.harness_key,
                endpoints.kafka,
                endpoints.cassandra,
            ),
            force,
            reports=reports,
            rate=rate,
            drones=drones,
            seed=seed,
            batch=batch,
            say=say,
            sizes=sizes,
            processes=_pids(stack, services),
            lag_every=lag_every,
        )
        return result | {"force": force.force_id}
    finally:
        if services is not None:
            services.stop()
        if not keep:
            delete_topics(admin, force)
            drop_keyspace(session, force.keyspace)
        shutdown_session(session)


def _pids(stack: Stack, services: ForceServices) -> dict[str, int]:
    """The processes a run's CPU is spent in: the force's services and the stack's servers."""
    pids = {name: process.pid() for name, process in services.processes.items()}
    pids |= {name: stack.server(name).pid() for name in ("kafka", "cassandra")}
    return {name: pid for name, pid in pids.items() if pid is not None}
