"""TopicsReady: the force's Kafka topics exist, laid out as its spec says."""

from __future__ import annotations

from collections.abc import Iterable

from confluent_kafka import KafkaException

from peaceland.operator.results import Cause, Event, Force, Step
from peaceland.operator.servers import Servers
from peaceland.tenants.errors import ProvisioningError
from peaceland.tenants.forces import resources_for
from peaceland.tenants.kafka import is_transient
from peaceland.tenants.provisioning.topics import ensure_topics


def topics_step(force: Force, servers: Servers, events: list[Event], cause: Cause) -> Step:
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
        reason = "KafkaUnavailable" if is_transient(error) else "KafkaError"
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
