"""Reconciling one police force: its topics, its keyspace and its consumers, then its status.

Plain, typed and idempotent: the kopf handlers call these and translate the outcome into
status, Events and kopf's retry errors. Each of the three steps runs even when another
fails, so the status says everything that is wrong at once, and a Kafka outage does not
stop the keyspace or the consumers from being made.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import httpx2
from cassandra import DriverException, OperationTimedOut, ReadTimeout, Unavailable, WriteTimeout
from cassandra.cluster import NoHostAvailable
from confluent_kafka import KafkaError, KafkaException
from lightkube import ApiError

from peaceland.operator.kube import Availability, Workloads
from peaceland.operator.progress import Progress, Verdict
from peaceland.operator.results import Cause, Event, Force, Outcome, Step, failures
from peaceland.operator.servers import Servers
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.provisioning.claims import (
    claim,
    owner_of,
    release,
)
from peaceland.tenants.provisioning.keyspace import (
    apply_replication,
    drop_keyspace,
    ensure_keyspace,
    schema_version,
)
from peaceland.tenants.provisioning.topics import delete_topics, ensure_topics
from peaceland.tenants.workloads import CONSUMERS, consumer_deployment, settings_config_map

log = logging.getLogger(__name__)

#: Cassandra is down or overloaded (retry), as opposed to refusing what we asked.
_CASSANDRA_DOWN: tuple[type[Exception], ...] = (
    NoHostAvailable,
    OperationTimedOut,
    Unavailable,
    ReadTimeout,
    WriteTimeout,
)

_KAFKA_UNREACHABLE = {
    KafkaError._TRANSPORT,
    KafkaError._TIMED_OUT,
    KafkaError._ALL_BROKERS_DOWN,
    KafkaError._RESOLVE,
    KafkaError.REQUEST_TIMED_OUT,
    KafkaError.NOT_CONTROLLER,
    KafkaError.NOT_COORDINATOR,
}


def reconcile(
    force: Force, servers: Servers, workloads: Workloads, cause: Cause, progress: Progress
) -> Outcome:
    """Make the force's topics, keyspace and consumers match its spec; say how it went,
    and whether the consumers keep up.

    First the force's claim on its id: until it is held, nothing is touched, for another
    namespace's PoliceForce of the same name may own those topics and that keyspace.
    """
    try:
        claim(servers.claims(), force.name, force.owner, workloads.force_exists)
    except ProvisioningError as exc:
        failed = Step("TopicsReady", False, exc.reason, str(exc))
        return Outcome(
            steps=[
                failed,
                failed.as_condition("KeyspaceReady"),
                failed.as_condition("ConsumersReady"),
            ],
            events=[Event("Warning", exc.reason, str(exc))],
            permanent=str(exc),
        )
    except Exception as exc:  # the driver raises several types; every one means "not now"
        waiting = Step(
            "TopicsReady",
            False,
            "CassandraUnavailable",
            f"cannot check who owns the id {force.name!r} (Cassandra "
            f"{servers.settings.cassandra_contact_points}): {exc}",
            retry=True,
        )
        return Outcome(
            steps=[
                waiting,
                waiting.as_condition("KeyspaceReady"),
                waiting.as_condition("ConsumersReady"),
            ]
        )
    outcome = Outcome(steps=[])
    outcome.steps.append(_topics(force, servers, outcome.events, cause))
    outcome.steps.append(_keyspace(force, servers, outcome.events))
    outcome.steps.append(_consumers(force, servers.settings, workloads, outcome.events, cause))
    step, outcome.verdicts = progress_step(force, servers, progress)
    if step is not None:
        outcome.steps.append(step)
    return outcome


def consumers_step(force: Force, workloads: Workloads) -> Step:
    """Only whether the consumers are available (the cheap check between reconciles)."""
    try:
        return _availability_step(workloads.availability(force.namespace, force.name))
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("ConsumersReady", False, "ApiError", f"Kubernetes API: {exc}", retry=True)


def progress_step(
    force: Force, servers: Servers, progress: Progress
) -> tuple[Step | None, list[Verdict]]:
    """Whether every consumer commits while reports wait (read from Kafka's offsets); None
    when Kafka could not say (the condition stays as it was: not knowing is no stall, and
    TopicsReady says what is wrong with Kafka)."""
    try:
        verdicts = progress.check(servers.kafka(), force.name, servers.settings.request_timeout)
    except KafkaException as exc:
        log.warning("%s: consumer groups' offsets not read: %s", force.owner, exc)
        return None, []
    stalled = [v for v in verdicts if v.stalled]
    if not stalled:
        return Step("ConsumersProgressing", True, "Progressing", "; ".join(map(str, verdicts))), (
            verdicts
        )
    first = stalled[0].consumer
    message = "; ".join(map(str, stalled)) + (
        f"; its log says why: kubectl logs -n {force.namespace} deploy/{force.name}-{first}"
    )
    return Step("ConsumersProgressing", False, f"{first.capitalize()}Stalled", message), verdicts


def _topics(force: Force, servers: Servers, events: list[Event], cause: Cause) -> Step:
    resources = resources_for(force.name)
    settings = force.spec.topic_settings()
    try:
        created = ensure_topics(
            servers.kafka(), resources, settings, timeout=servers.settings.request_timeout
        )
    except ProvisioningError as exc:
        return Step("TopicsReady", False, exc.reason, str(exc))
    except KafkaException as exc:
        error = exc.args[0]
        unreachable = error.code() in _KAFKA_UNREACHABLE or error.retriable()
        reason = "KafkaUnavailable" if unreachable else "KafkaError"
        return Step(
            "TopicsReady",
            False,
            reason,
            f"Kafka ({servers.settings.kafka_bootstrap_servers}): {error.str()}",
            retry=True,
        )
    if cause != "drift":  # said once per spec, not every drift reconcile
        _warn_on_replication_change(servers, resources.topics, settings.replication_factor, events)
    if created:
        recreated = cause == "drift" or len(created) < len(resources.topics)
        events.append(
            Event(
                "Warning" if recreated else "Normal",
                "TopicsRecreated" if recreated else "TopicsCreated",
                f"{'re-created missing' if recreated else 'created'} topics {', '.join(created)}",
            )
        )
    return Step(
        "TopicsReady",
        True,
        "TopicsCreated" if created else "TopicsUpToDate",
        f"{len(resources.topics)} topics, {settings.partitions} partitions, "
        f"{settings.replication_factor} copies, kept {force.spec.kafka.retention_hours} h",
    )


def _warn_on_replication_change(
    servers: Servers, topics: Iterable[str], wanted: int, events: list[Event]
) -> None:
    """Kafka changes a topic's copies only by a partition reassignment, a deliberate
    operation: say so rather than pretend the spec was applied."""
    try:
        metadata = servers.kafka().list_topics(timeout=servers.settings.request_timeout).topics
    except KafkaException:
        return  # the next reconcile says it; the topics are made, which is what matters now
    differ = [
        f"{t} ({len(metadata[t].partitions[0].replicas)})"
        for t in topics
        if t in metadata
        and metadata[t].partitions
        and len(metadata[t].partitions[0].replicas) != wanted
    ]
    if differ:
        events.append(
            Event(
                "Warning",
                "ReplicationFactorNotChanged",
                f"spec.kafka.replicationFactor is {wanted} but these topics keep their copies: "
                f"{', '.join(differ)}; reassign their partitions with kafka-reassign-partitions",
            )
        )


def _keyspace(force: Force, servers: Servers, events: list[Event]) -> Step:
    keyspace = resources_for(force.name).keyspace
    replication = force.spec.replication()
    where = f"Cassandra ({servers.settings.cassandra_contact_points})"
    try:
        session = servers.cassandra()
    except Exception as exc:  # the driver raises several types; every one means "not now"
        return Step("KeyspaceReady", False, "CassandraUnavailable", f"{where}: {exc}", retry=True)
    try:
        applied = ensure_keyspace(session, keyspace, replication, force.spec.retention_days)
        changed = apply_replication(session, keyspace, replication)
        version = schema_version(session, keyspace)
    except ProvisioningError as exc:
        return Step("KeyspaceReady", False, exc.reason, str(exc))
    except _CASSANDRA_DOWN as exc:
        return Step("KeyspaceReady", False, "CassandraUnavailable", f"{where}: {exc}", retry=True)
    except DriverException as exc:  # refused: a permission, a statement; said as it is
        return Step("KeyspaceReady", False, "CassandraError", f"{where}: {exc}", retry=True)
    if applied:
        events.append(
            Event(
                "Normal",
                "SchemaMigrated",
                f"keyspace {keyspace}: applied schema migrations {applied}",
            )
        )
    if changed:
        events.append(
            Event(
                "Warning",
                "RepairNeeded",
                f"keyspace {keyspace}: replication is now {replication.cql()}; run "
                f"`nodetool repair {keyspace}` on every node so existing rows reach their replicas",
            )
        )
    return Step(
        "KeyspaceReady",
        True,
        "SchemaMigrated" if applied else "KeyspaceUpToDate",
        f"keyspace {keyspace} at schema version {version}, replication {replication.cql()}, "
        f"rows kept {force.spec.retention_days} days",
    )


def manifests(force: Force, settings: OperatorSettings) -> list[dict[str, Any]]:
    """The ConfigMap and consumer Deployments the force runs on."""
    return [
        settings_config_map(force.name, force.uid, force.spec),
        *(
            consumer_deployment(
                force.name,
                force.uid,
                force.spec,
                consumer,
                kafka_bootstrap_servers=settings.consumers_kafka,
                cassandra_contact_points=settings.consumers_cassandra,
            )
            for consumer in CONSUMERS
        ),
    ]


def _consumers(
    force: Force,
    settings: OperatorSettings,
    workloads: Workloads,
    events: list[Event],
    cause: Cause,
) -> Step:
    try:
        changed = workloads.apply(force.namespace, manifests(force, settings))
        availability = workloads.availability(force.namespace, force.name)
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("ConsumersReady", False, "ApiError", f"Kubernetes API: {exc}", retry=True)
    if changed:
        if cause == "drift":
            events.append(
                Event("Warning", "DriftRepaired", f"restored {', '.join(changed)} to the spec")
            )
        else:
            events.append(Event("Normal", "ConsumersApplied", f"applied {', '.join(changed)}"))
    return _availability_step(availability)


def _availability_step(availability: Iterable[Availability]) -> Step:
    states = list(availability)
    message = ", ".join(f"{a.name} {a}" for a in states)
    if all(a.ready for a in states):
        return Step("ConsumersReady", True, "Available", message)
    return Step("ConsumersReady", False, "Progressing", message)


def teardown(force_name: str, namespace: str, policy: str, servers: Servers) -> list[Event]:
    """What the deletion policy asks for the force's data: ``Delete`` removes its topics and
    keyspace, ``Retain`` keeps both; the id's claim is released either way (a PoliceForce of
    that name created later adopts retained data). Only the owner's data is touched. Raises
    while a server is unreachable (retry)."""
    resources = resources_for(force_name)
    owner = f"{namespace}/{force_name}"
    session = servers.claims()
    holder = owner_of(session, force_name)
    if holder != owner:
        # Never its data (NameTaken), or its claim is gone (a Retain force's data released
        # for adoption): either way, not this resource's to delete.
        whose = f"belongs to {holder}" if holder else "is claimed by no PoliceForce"
        return [Event("Normal", "NotOwner", f"the id {whose}: its data is left alone")]
    if policy != "Delete":
        release(session, force_name, owner)
        return [
            Event(
                "Normal",
                "DataRetained",
                f"deletionPolicy Retain: kept topics {', '.join(resources.topics)} and keyspace "
                f"{resources.keyspace}",
            )
        ]
    delete_topics(servers.kafka(), resources, timeout=servers.settings.request_timeout)
    drop_keyspace(session, resources.keyspace)
    release(session, force_name, owner)
    return [
        Event(
            "Normal",
            "DataDeleted",
            f"deletionPolicy Delete: deleted topics {', '.join(resources.topics)} and keyspace "
            f"{resources.keyspace}",
        )
    ]


# --------------------------------------------------------------------------- status


def conditions(
    current: list[dict[str, Any]], steps: list[Step], now: datetime | None = None
) -> list[dict[str, Any]]:
    """The status conditions after ``steps``: the three steps' and ``Ready`` over them.

    A condition keeps its lastTransitionTime while its status stays the same."""
    stamp = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    by_type = {c.get("type"): c for c in current}
    failing = [s for s in steps if not s.ok]
    ready = Step(
        "Ready",
        not failing,
        "Ready" if not failing else failing[0].reason,
        failures(failing) or "topics, keyspace and consumers are ready",
    )
    out = []
    for step in [*steps, ready]:
        status = "True" if step.ok else "False"
        previous = by_type.get(step.condition, {})
        since = previous.get("lastTransitionTime") if previous.get("status") == status else None
        out.append(
            {
                "type": step.condition,
                "status": status,
                "reason": step.reason,
                "message": step.message[:4096],
                "lastTransitionTime": since or stamp,
            }
        )
    return out


def merge_step(current: list[dict[str, Any]], *fresh: Step) -> list[Step]:
    """The steps recorded in ``current`` conditions, with each ``fresh`` step in place of its
    own (or added, when the status has no such condition yet)."""
    by_type = {step.condition: step for step in fresh}
    steps = []
    for condition in current:
        if condition.get("type") in (None, "Ready"):
            continue
        step = by_type.pop(condition["type"], None)
        steps.append(
            step
            or Step(
                condition["type"],
                condition.get("status") == "True",
                condition.get("reason", ""),
                condition.get("message", ""),
            )
        )
    return steps + list(by_type.values())


def transitions(current: list[dict[str, Any]], steps: list[Step]) -> list[Event]:
    """Events for a consumer that stalled or recovered since ``current`` conditions."""
    before = {c.get("type"): c.get("status") for c in current}
    events = []
    for step in steps:
        if step.condition != "ConsumersProgressing":
            continue
        was = before.get(step.condition)
        if not step.ok and was != "False":
            events.append(Event("Warning", step.reason, step.message))
        elif step.ok and was == "False":
            events.append(Event("Normal", "ConsumersRecovered", step.message))
    return events


def phase(previous: str | None, ready: bool) -> str:
    """Ready when ready; before the first Ready, Provisioning; after it, Degraded."""
    if ready:
        return "Ready"
    return "Degraded" if previous in ("Ready", "Degraded") else "Provisioning"
