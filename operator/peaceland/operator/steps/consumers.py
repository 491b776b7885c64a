"""ConsumersReady: the force's ConfigMap and consumer Deployments are as its spec says, and
available."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import httpx2
from lightkube import ApiError

from peaceland.operator.kube import Availability, NotOwnedError, Workloads
from peaceland.operator.results import Cause, Event, Force, Step
from peaceland.operator.settings import OperatorSettings
from peaceland.tenants.environment import KAFKA_SASL_MECHANISM, KAFKA_SECURITY_PROTOCOL
from peaceland.tenants.workloads import LAKE, consumer_deployment, settings_config_map


def manifests(
    force: Force, settings: OperatorSettings, credentials_version: str = "0"
) -> list[dict[str, Any]]:
    """The ConfigMap and consumer Deployments the force runs on, signed in with the
    credentials of ``credentials_version`` (``ForceCredentials.version``)."""
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
                cassandra_local_dc=settings.cassandra_local_dc,
                credentials_version=credentials_version,
                kafka_security={
                    KAFKA_SECURITY_PROTOCOL: settings.kafka_access().protocol,
                    KAFKA_SASL_MECHANISM: settings.kafka_sasl_mechanism,
                },
                lake_uri=settings.lake_uri if consumer == LAKE else None,
                lake_flush_seconds=settings.lake_flush_seconds,
                lake_s3_keys=settings.lake_on_object_store,
            )
            for consumer in settings.consumers
        ),
    ]


def consumers_step(
    force: Force,
    settings: OperatorSettings,
    workloads: Workloads,
    events: list[Event],
    cause: Cause,
    credentials_version: str | None,
) -> Step:
    """Apply the ConfigMap and Deployments (their changes are said in Events), then say
    whether the consumers are available. ``credentials_version``: the credentials they run on
    (None: none issued yet, so nothing is applied)."""
    if credentials_version is None:
        return Step("ConsumersReady", False, "WaitingForCredentials", "no credentials yet")
    try:
        changed = workloads.apply(force.namespace, manifests(force, settings, credentials_version))
        availability = workloads.availability(force.namespace, force.name, settings.consumers)
    except NotOwnedError as exc:
        return Step("ConsumersReady", False, "NotOwner", str(exc))
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("ConsumersReady", False, "ApiError", f"Kubernetes API: {exc}", retry=True)
    if changed:
        if cause == "drift":
            events.append(
                Event("Warning", "DriftRepaired", f"restored {', '.join(changed)} to the spec")
            )
        else:
            events.append(Event("Normal", "ConsumersApplied", f"applied {', '.join(changed)}"))
    return _consumers_ready(availability)


def _consumers_ready(availability: Iterable[Availability]) -> Step:
    states = list(availability)
    message = ", ".join(f"{a.name} {a}" for a in states)
    if all(a.ready for a in states):
        return Step("ConsumersReady", True, "Available", message)
    return Step("ConsumersReady", False, "Progressing", message)


def availability_step(force: Force, settings: OperatorSettings, workloads: Workloads) -> Step:
    """Only whether the consumers are available (the cheap check between reconciles)."""
    try:
        return _consumers_ready(
            workloads.availability(force.namespace, force.name, settings.consumers)
        )
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("ConsumersReady", False, "ApiError", f"Kubernetes API: {exc}", retry=True)
