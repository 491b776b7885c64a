"""The environment every deployable of the platform is configured through, named once.

Each deployable reads its own settings as ``PEACELAND_<COMPONENT>_<FIELD>`` (pydantic-settings,
``env_prefix``), and the servers' addresses without a prefix: every process of a force talks
to the same Kafka and Cassandra. The settings classes, the operator's Deployments and the
local node all take the names from here, so a renamed setting cannot be missed by one of
them; ``tests/tenants/test_workloads.py`` and ``tests/node/test_launch.py`` feed what is
built from here to the settings classes themselves.
"""

from __future__ import annotations

from typing import Final

KAFKA_BOOTSTRAP_SERVERS: Final = "KAFKA_BOOTSTRAP_SERVERS"
KAFKA_SECURITY_PROTOCOL: Final = "KAFKA_SECURITY_PROTOCOL"
KAFKA_SASL_MECHANISM: Final = "KAFKA_SASL_MECHANISM"
KAFKA_SSL_CA_LOCATION: Final = "KAFKA_SSL_CA_LOCATION"
CASSANDRA_CONTACT_POINTS: Final = "CASSANDRA_CONTACT_POINTS"
CASSANDRA_LOCAL_DC: Final = "CASSANDRA_LOCAL_DC"
CASSANDRA_SSL_CA_LOCATION: Final = "CASSANDRA_SSL_CA_LOCATION"
#: Credentials: ``<SERVER>_USERNAME`` and ``<SERVER>_PASSWORD``, or a file holding each
#: (``<SERVER>_USERNAME_FILE``, ``<SERVER>_PASSWORD_FILE``: a mounted Secret's keys).
KAFKA_USERNAME: Final = "KAFKA_USERNAME"
KAFKA_PASSWORD: Final = "KAFKA_PASSWORD"  # noqa: S105 - a variable's name
CASSANDRA_USERNAME: Final = "CASSANDRA_USERNAME"
CASSANDRA_PASSWORD: Final = "CASSANDRA_PASSWORD"  # noqa: S105 - a variable's name


def file_variable(name: str) -> str:
    """The variable naming a file that holds ``name``'s value (``KAFKA_PASSWORD_FILE``)."""
    return f"{name}_FILE"


#: The files of a credentials folder (a mounted Secret's items, or a local folder).
CREDENTIAL_FILES: Final = {
    KAFKA_USERNAME: "kafka-username",
    KAFKA_PASSWORD: "kafka-password",
    CASSANDRA_USERNAME: "cassandra-username",
    CASSANDRA_PASSWORD: "cassandra-password",
}


def credentials_environment(folder: str, *, cassandra: bool = True) -> dict[str, str]:
    """The variables that point a process at the credentials in ``folder`` (the files of
    ``CREDENTIAL_FILES``); ``cassandra=False`` for a process that only reaches Kafka."""
    return {
        file_variable(name): f"{folder}/{file}"
        for name, file in CREDENTIAL_FILES.items()
        if cassandra or name.startswith("KAFKA_")
    }


def env_prefix(component: str) -> str:
    """Where ``component``'s own settings live in its environment: ``PEACELAND_<COMPONENT>_``."""
    return f"PEACELAND_{component.upper()}_"


def env_name(component: str, field: str) -> str:
    """The variable of one setting of ``component`` (``env_name("alerter", "force_id")``)."""
    return env_prefix(component) + field.upper()


def consumer_environment(
    consumer: str,
    force_id: str,
    *,
    kafka_bootstrap_servers: str,
    cassandra_contact_points: str,
    metrics_port: int,
    settings_file: str | None = None,
    replicas: int | None = None,
    instance: str | None = None,
    cassandra_local_dc: str | None = None,
) -> dict[str, str]:
    """The environment of one replica of a force's consumer (``archiver`` or ``alerter``).

    ``settings_file`` (the force's mounted settings), ``replicas`` (how many alerter slots)
    and ``instance`` (the replica's name) are the alerter's; None leaves a setting at its
    default (the operator gives a pod its name through the downward API instead).
    """
    env = {
        env_name(consumer, "force_id"): force_id,
        KAFKA_BOOTSTRAP_SERVERS: kafka_bootstrap_servers,
        CASSANDRA_CONTACT_POINTS: cassandra_contact_points,
        env_name(consumer, "metrics_port"): str(metrics_port),
    }
    if cassandra_local_dc is not None:
        env[CASSANDRA_LOCAL_DC] = cassandra_local_dc
    optional = {"settings_file": settings_file, "replicas": replicas, "instance": instance}
    env |= {env_name(consumer, k): str(v) for k, v in optional.items() if v is not None}
    return env
