"""What every Kafka client of the platform shares: its base settings and one judgement of
which errors heal by themselves.

The operator, the consumers, the gateway and the load generator build their clients on
``client_config`` so that a setting every client must carry (never auto-creating a topic;
credentials, once the servers require them) is written once.
"""

from __future__ import annotations

from typing import Final, TypeAlias

from confluent_kafka import KafkaError, KafkaException

from peaceland.tenants.provisioning.topics import MAX_RECORD_BYTES

#: librdkafka settings, as its clients take them.
Config: TypeAlias = dict[str, str | int | float | bool]

#: Errors of a cluster that is unreachable, electing a controller, or moving a coordinator:
#: the same request succeeds a moment later. librdkafka does not flag all of them retriable
#: (an admin request that timed out, a coordinator still loading).
_HEALING: Final = frozenset(
    {
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._RESOLVE,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
        KafkaError.NOT_COORDINATOR,
        KafkaError.COORDINATOR_NOT_AVAILABLE,
        KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
    }
)


def client_config(bootstrap_servers: str) -> Config:
    """The settings every producer, consumer and admin client of ours starts from."""
    return {
        "bootstrap.servers": bootstrap_servers,
        # A force's topics are made by the operator only: no client may (re)create one on a
        # broker that auto-creates topics, as production brokers do by default.
        "allow.auto.create.topics": False,
    }


def producer_config(bootstrap_servers: str, *, linger_ms: int = 0) -> Config:
    """A producer whose acknowledged records are on every in-sync replica, never doubled."""
    return client_config(bootstrap_servers) | {
        "enable.idempotence": True,
        "acks": "all",
        "linger.ms": linger_ms,
        "compression.type": "lz4",
        # The largest valid report must fit (Kafka's default refuses it).
        "message.max.bytes": MAX_RECORD_BYTES,
    }


def is_transient(error: KafkaError | KafkaException) -> bool:
    """Whether the request that failed with ``error`` may succeed if sent again later."""
    if isinstance(error, KafkaException):
        inner = error.args[0] if error.args else None
        if not isinstance(inner, KafkaError):
            return False
        error = inner
    if error.fatal():
        return False
    return bool(error.retriable()) or error.code() in _HEALING
