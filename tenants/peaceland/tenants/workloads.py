"""The Kubernetes objects that run a police force's consumers, rendered from its spec.

Plain functions from a PoliceForce to manifests (dicts), so the operator only applies what
they return and tests read them directly. Every object is owned by the PoliceForce
(ownerReference), so deleting the force deletes them, and labelled with the force's id.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Final

from peaceland.tenants.environment import (
    CREDENTIAL_FILES,
    consumer_environment,
    credentials_environment,
    env_name,
)
from peaceland.tenants.forces import resources_for
from peaceland.tenants.policeforce import GROUP, KIND, VERSION, PoliceForceSpec
from peaceland.tenants.provisioning.identities import ForceCredentials, secret_name

#: The consumers of the data path, which every force runs.
CONSUMERS: Final = ("archiver", "alerter")
#: The analytics lake's consumer, which a force runs when the platform has a lake.
LAKE: Final = "lake"
SETTINGS_KEY: Final = "force.json"
SETTINGS_DIR: Final = "/etc/peaceland"
#: Where a consumer's credentials are mounted (its items of the force's Secret).
CREDENTIALS_DIR: Final = "/var/run/secrets/peaceland"
#: The pod template's annotation naming the credentials' version (generation and a digest of
#: the passwords): a rotation, or any new password, changes it, which rolls the Deployment
#: onto the new credentials.
GENERATION_ANNOTATION: Final = "peaceland.io/credentials-generation"
_APP: Final = "peaceland"
#: The unprivileged user and group a consumer runs as (the image needs no other).
RUN_AS: Final = 10001
#: Where a lake consumer on an object store copies an hour's files to compact them, and
#: the most they may take (an hour of a force sending 4,000 reports a second is ~1.4 GB).
LAKE_WORK_DIR: Final = "/var/cache/peaceland-lake"
LAKE_WORK_SIZE: Final = "8Gi"
#: The lake consumer's keys of the lake's object store, as files of its credentials.
_S3_KEY_FILES: Final = ("s3-access-key-id", "s3-secret-access-key")
#: Where a consumer pod serves its probes and metrics.
METRICS_PORT: Final = 9100


def labels(force_id: str, component: str | None = None) -> dict[str, str]:
    out = {
        "app.kubernetes.io/name": _APP,
        "app.kubernetes.io/managed-by": "peaceland-operator",
        "peaceland.io/police-force": force_id,
    }
    if component:
        out["app.kubernetes.io/component"] = component
    return out


def owner_reference(force_id: str, uid: str) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": force_id,
        "uid": uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def settings_config_map(force_id: str, uid: str, spec: PoliceForceSpec) -> dict[str, Any]:
    """The force's run-time settings, mounted into its consumers and re-read live."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": f"{force_id}-settings",
            "labels": labels(force_id, "settings"),
            "ownerReferences": [owner_reference(force_id, uid)],
        },
        "data": {SETTINGS_KEY: spec.force_settings(force_id).model_dump_json(indent=2)},
    }


def credentials_secret(force_id: str, uid: str, credentials: ForceCredentials) -> dict[str, Any]:
    """The Secret that holds the force's identities (``ForceCredentials.secret_data``),
    mounted item by item into each consumer; the platform's gateway reads its own keys."""
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": secret_name(force_id),
            "labels": labels(force_id, "credentials"),
            "annotations": {GENERATION_ANNOTATION: str(credentials.generation)},
            "ownerReferences": [owner_reference(force_id, uid)],
        },
        # data, not stringData: server-side apply then compares like with like, and an
        # unchanged Secret is not rewritten on every reconcile.
        "data": {
            key: base64.b64encode(value.encode()).decode()
            for key, value in credentials.secret_data().items()
        },
    }


def decode_secret_data(data: Mapping[str, str] | None) -> dict[str, str]:
    """A Secret's ``data`` as the API server returns it (base64), as text."""
    return {key: base64.b64decode(value).decode() for key, value in (data or {}).items()}


def _credential_items(consumer: str, *, cassandra: bool = True) -> list[dict[str, str]]:
    """The consumer's own keys of the force's Secret, under the file names every process
    reads (``CREDENTIAL_FILES``): it never sees another role's password (nor Cassandra's
    when it does not use Cassandra)."""
    return [
        {"key": f"{consumer}.{file}" if name.startswith("KAFKA_") else file, "path": file}
        for name, file in CREDENTIAL_FILES.items()
        if cassandra or name.startswith("KAFKA_")
    ]


def consumer_deployment(
    force_id: str,
    uid: str,
    spec: PoliceForceSpec,
    consumer: str,
    *,
    kafka_bootstrap_servers: str,
    cassandra_contact_points: str,
    cassandra_local_dc: str = "datacenter1",
    credentials_version: str = "0",
    kafka_security: dict[str, str] | None = None,
    lake_uri: str | None = None,
    lake_flush_seconds: float | None = None,
    lake_s3_keys: bool = False,
) -> dict[str, Any]:
    """The Deployment of one of the force's consumers (``archiver``, ``alerter`` or
    ``lake``, which writes to ``lake_uri``), signed in as the force's principal for that
    role (the Secret's items, mounted read-only). ``lake_s3_keys``: the lake is on an object
    store, where the lake consumer signs in with the force's own keys (the Secret's
    ``lake.s3-*``)."""
    if consumer not in (*CONSUMERS, LAKE):
        raise ValueError(f"no consumer called {consumer!r}; there are {(*CONSUMERS, LAKE)}")
    if (consumer == LAKE) != (lake_uri is not None):
        raise ValueError("the lake consumer, and it alone, takes a lake_uri")
    alerter = consumer == "alerter"
    lake = consumer == LAKE
    values = consumer_environment(
        consumer,
        force_id,
        kafka_bootstrap_servers=kafka_bootstrap_servers,
        cassandra_contact_points=cassandra_contact_points,
        metrics_port=METRICS_PORT,
        settings_file=f"{SETTINGS_DIR}/{SETTINGS_KEY}" if alerter else None,
        cassandra_local_dc=cassandra_local_dc,
    )
    if lake_uri is not None:
        values[env_name(consumer, "lake_uri")] = lake_uri
        # The force's retention covers its lake as it does its archive.
        values[env_name(consumer, "retention_days")] = str(spec.retention_days)
        if lake_flush_seconds is not None:
            values[env_name(consumer, "flush_seconds")] = str(lake_flush_seconds)
        if lake_s3_keys:
            values[env_name(consumer, "compact_work_dir")] = LAKE_WORK_DIR
            for file in _S3_KEY_FILES:
                values[env_name(consumer, f"{file.replace('-', '_')}_file")] = (
                    f"{CREDENTIALS_DIR}/{file}"
                )
    # The lake reaches Kafka only: it is given no Cassandra credentials.
    values |= credentials_environment(CREDENTIALS_DIR, cassandra=not lake) | (kafka_security or {})
    env: list[dict[str, Any]] = [{"name": k, "value": v} for k, v in values.items()]
    if alerter:
        env += [
            # The pod's name: how its logs and its alerter slot name this replica.
            {
                "name": env_name(consumer, "instance"),
                "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}},
            },
            # As many alerter slots as replicas (each names one replica's transactions).
            {"name": env_name(consumer, "replicas"), "value": str(spec.consumers.replicas)},
        ]
    selector = labels(force_id, consumer)
    # The alerter never surges: a new pod would wait for a slot that the old pod it replaces
    # frees only when it stops. The archiver may run a new pod beside the old.
    strategy = (
        {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}}
        if consumer == "alerter"
        else {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    )
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": f"{force_id}-{consumer}",
            "labels": selector,
            "ownerReferences": [owner_reference(force_id, uid)],
        },
        "spec": {
            "replicas": spec.consumers.replicas,
            "selector": {"matchLabels": selector},
            "strategy": strategy,
            "template": {
                "metadata": {
                    "labels": selector,
                    "annotations": {GENERATION_ANNOTATION: credentials_version},
                },
                "spec": {
                    # SIGTERM lets a batch finish and commit; give it time.
                    "terminationGracePeriodSeconds": 60,
                    # The "restricted" Pod Security Standard: a consumer needs no root, no
                    # privilege, no capability and no write to its image.
                    "securityContext": {
                        "runAsNonRoot": True,
                        "runAsUser": RUN_AS,
                        "runAsGroup": RUN_AS,
                        # The mounted Secret's files belong to this group (mode 0440).
                        "fsGroup": RUN_AS,
                        "seccompProfile": {"type": "RuntimeDefault"},
                    },
                    "containers": [
                        {
                            "name": consumer,
                            "image": spec.consumers.image,
                            "args": ["python", "-m", f"peaceland.services.{consumer}"],
                            "env": env,
                            "ports": [{"name": "metrics", "containerPort": METRICS_PORT}],
                            # /livez fails when the poll loop stops turning (a hang: restart
                            # it); /readyz while it retries a batch (a server refusing work).
                            "livenessProbe": {
                                "httpGet": {"path": "/livez", "port": "metrics"},
                                "periodSeconds": 10,
                                "failureThreshold": 3,
                            },
                            "readinessProbe": {
                                "httpGet": {"path": "/readyz", "port": "metrics"},
                                "periodSeconds": 5,
                                "failureThreshold": 2,
                            },
                            "resources": spec.consumers.resources.model_dump(),
                            "securityContext": {
                                "allowPrivilegeEscalation": False,
                                "readOnlyRootFilesystem": True,
                                "capabilities": {"drop": ["ALL"]},
                            },
                            "volumeMounts": [
                                {"name": "settings", "mountPath": SETTINGS_DIR, "readOnly": True},
                                {
                                    "name": "credentials",
                                    "mountPath": CREDENTIALS_DIR,
                                    "readOnly": True,
                                },
                                # The one place a consumer may write (Python's and
                                # librdkafka's temporary files), gone with the pod.
                                {"name": "tmp", "mountPath": "/tmp"},  # noqa: S108
                                *(
                                    [{"name": "work", "mountPath": LAKE_WORK_DIR}]
                                    if lake and lake_s3_keys
                                    else []
                                ),
                            ],
                        }
                    ],
                    "volumes": [
                        {"name": "settings", "configMap": {"name": f"{force_id}-settings"}},
                        {
                            "name": "credentials",
                            "secret": {
                                "secretName": secret_name(force_id),
                                "items": _credential_items(consumer, cassandra=not lake)
                                + [
                                    {"key": f"{LAKE}.{file}", "path": file}
                                    for file in (_S3_KEY_FILES if lake and lake_s3_keys else ())
                                ],
                                "defaultMode": 0o440,
                            },
                        },
                        {"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}},
                        *(
                            [{"name": "work", "emptyDir": {"sizeLimit": LAKE_WORK_SIZE}}]
                            if lake and lake_s3_keys
                            else []
                        ),
                    ],
                },
            },
        },
    }


def status_names(force_id: str) -> dict[str, str]:
    """The resource names a PoliceForce's status reports."""
    r = resources_for(force_id)
    return {
        "reportsTopic": r.reports_topic,
        "alertsTopic": r.alerts_topic,
        "deadLetterTopic": r.dead_letter_topic,
        "lifecycleTopic": r.lifecycle_topic,
        "keyspace": r.keyspace,
    }
