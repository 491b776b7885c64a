"""CredentialsReady: the force's Kafka principals, ACLs and Cassandra role exist, and its
Secret hands them to its consumers; after a rotation, the old generation is retired once
every consumer runs on the new one.

The Secret is the record of the live generation: identities are made on the servers before
the Secret names them, so a consumer never reads a credential the servers do not know, and
the old generation stays valid until no consumer uses it.
"""

from __future__ import annotations

import dataclasses
import logging

import httpx2
from confluent_kafka import KafkaException
from lightkube import ApiError

from peaceland.operator.kube import NotOwnedError, Workloads
from peaceland.operator.results import Event, Force, Step
from peaceland.operator.servers import Servers
from peaceland.tenants.provisioning.identities import (
    ForceCredentials,
    ensure_identities,
    kafka_principal,
    retire_generations,
    secret_name,
)
from peaceland.tenants.provisioning.quotas import produce_quota, set_produce_quota
from peaceland.tenants.workloads import credentials_secret

log = logging.getLogger(__name__)


def credentials_step(
    force: Force, servers: Servers, workloads: Workloads, events: list[Event]
) -> tuple[Step, ForceCredentials | None]:
    """Issue (or keep) the force's identities at the generation its spec asks; returns the
    step and the credentials the consumers run on (None: none usable yet)."""
    generation = force.spec.credentials.rotation
    name = secret_name(force.name)
    try:
        data = workloads.secret_data(force.namespace, name, force.uid)
    except NotOwnedError as exc:
        return Step("CredentialsReady", False, "NotOwner", str(exc)), None
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("CredentialsReady", False, "ApiError", f"Kubernetes API: {exc}", True), None
    current = ForceCredentials.from_secret_data(force.name, data) if data else None
    if current is not None and current.generation == generation:
        credentials = current
    else:
        credentials = ForceCredentials.generate(force.name, generation)
    fresh = credentials is not current
    try:
        ensure_identities(
            servers.kafka(),
            servers.cassandra(),
            credentials,
            servers.settings.request_timeout,
            # New credentials, or a role the Secret did not hold yet (the others' passwords
            # are set again, to what they are).
            set_passwords=fresh or credentials.secret_data() != data,
        )
        lake = servers.lake()
        if lake is not None:
            # The store makes the keys: those the Secret records are kept while it has them.
            keys = lake.ensure(force.name, generation, credentials.s3)
            credentials = dataclasses.replace(credentials, s3=keys)
    except Exception as exc:  # any server's error (three client libraries): said, retried
        message = f"issuing generation {generation}: {_describe(exc)}"
        return Step("CredentialsReady", False, "ServersUnavailable", message, True), current
    try:
        workloads.apply(force.namespace, [credentials_secret(force.name, force.uid, credentials)])
    except NotOwnedError as exc:
        return Step("CredentialsReady", False, "NotOwner", str(exc)), current
    except (ApiError, httpx2.HTTPError) as exc:
        return Step("CredentialsReady", False, "ApiError", f"Kubernetes API: {exc}", True), current
    if fresh:
        kind = "CredentialsRotated" if current is not None else "CredentialsIssued"
        events.append(Event("Normal", kind, f"{_names(credentials)}; Secret {name}"))
    issued = Step("CredentialsReady", True, "Issued", f"{_names(credentials)}; Secret {name}")
    return _with_quota(force, servers, credentials, issued), credentials


def _with_quota(
    force: Force, servers: Servers, credentials: ForceCredentials, issued: Step
) -> Step:
    """The gateway's producer writes at most what the force bought (plan), throttled by
    Kafka above it. Set after the Secret: a quota not set yet never holds back the
    consumers' credentials."""
    try:
        set_produce_quota(
            servers.quotas(),
            credentials.kafka["gateway"].username,
            produce_quota(force.spec.plan.max_reports_per_second),
        )
    except Exception as exc:  # any server's error: said, retried
        message = f"{_names(credentials)}; the gateway's quota not set: {_describe(exc)}"
        return Step("CredentialsReady", False, "QuotaNotSet", message, True)
    return issued


def retire_step(
    force: Force, servers: Servers, credentials: ForceCredentials, events: list[Event]
) -> Step | None:
    """Once every consumer runs on ``credentials``' generation: remove the others from both
    servers (refused from then on). None when there was nothing to do."""
    try:
        retired = retire(servers, force.name, keep=credentials.generation)
    except Exception as exc:  # any server's error (three client libraries): said, retried
        message = f"retiring old credentials: {_describe(exc)}"
        return Step("CredentialsReady", False, "ServersUnavailable", message, True)
    if retired:
        log.info("%s: retired credential generations %s", force.owner, retired)
        events.append(
            Event(
                "Normal",
                "CredentialsRetired",
                f"every consumer runs on generation {credentials.generation}: removed "
                f"generation(s) {', '.join(map(str, retired))} from the servers",
            )
        )
    return None


def retire(servers: Servers, force_id: str, keep: int | None) -> list[int]:
    """Remove every generation of the force's identities but ``keep`` (None: all, when the
    force is deleted), each gateway principal's quota first: a quota whose principal is
    gone would be found by nothing later. Returns the generations removed."""

    def remove_quota(generation: int) -> None:
        gateway = kafka_principal(force_id, "gateway", generation)
        set_produce_quota(servers.quotas(), gateway, None)

    removed = retire_generations(
        servers.kafka(),
        servers.cassandra(),
        force_id,
        keep=keep,
        timeout=servers.settings.request_timeout,
        before_kafka=remove_quota,
    )
    lake = servers.lake()
    if lake is not None:
        removed = sorted({*removed, *lake.retire(force_id, keep)})
    return removed


def _names(credentials: ForceCredentials) -> str:
    principals = ", ".join(i.username for i in credentials.kafka.values())
    roles = ", ".join(credentials.s3)
    lake = f"; its users of the lake's store ({roles})" if roles else ""
    return (
        f"generation {credentials.generation}: Kafka principals {principals}; Cassandra role "
        f"{credentials.cassandra.username}{lake}"
    )


def _describe(exc: BaseException) -> str:
    if isinstance(exc, KafkaException) and exc.args:
        inner = exc.args[0]
        return f"Kafka: {inner.str() if hasattr(inner, 'str') else inner}"
    return f"{type(exc).__name__}: {exc}"
