"""What every Kafka client of the platform shares: its base settings and one judgement of
which errors heal by themselves.

The operator, the consumers, the gateway and the load generator build their clients on
``client_config`` so that a setting every client must carry (never auto-creating a topic;
its credentials and transport security) is written once.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Final, Literal, TypeAlias

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


SecurityProtocol = Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SaslMechanism = Literal["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]


@dataclass(frozen=True, slots=True)
class KafkaAccess:
    """How one client reaches Kafka: where, as whom, and over what transport.

    The platform's Kafka requires SASL (SCRAM-SHA-512): each process signs in as its own
    principal, and the brokers' ACLs decide what that principal may touch.
    """

    bootstrap_servers: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    #: None: SASL_PLAINTEXT with a username (SASL_SSL with a CA), else PLAINTEXT (SSL).
    security_protocol: SecurityProtocol | None = None
    sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    #: The CA bundle that signed the brokers' certificates: TLS on every connection.
    ssl_ca_location: str | None = None

    @property
    def protocol(self) -> SecurityProtocol:
        if self.security_protocol is not None:
            return self.security_protocol
        tls = self.ssl_ca_location is not None
        if self.username is not None:
            return "SASL_SSL" if tls else "SASL_PLAINTEXT"
        return "SSL" if tls else "PLAINTEXT"

    def as_user(self, username: str, password: str) -> KafkaAccess:
        """The same cluster and transport, signed in as another principal."""
        return replace(self, username=username, password=password)


def client_config(access: KafkaAccess) -> Config:
    """The settings every producer, consumer and admin client of ours starts from."""
    config: Config = {
        "bootstrap.servers": access.bootstrap_servers,
        # A force's topics are made by the operator only: no client may (re)create one on a
        # broker that auto-creates topics, as production brokers do by default.
        "allow.auto.create.topics": False,
        "security.protocol": access.protocol,
    }
    if access.protocol.startswith("SASL"):
        if access.username is None or access.password is None:
            raise ValueError(f"Kafka over {access.protocol} needs a username and a password")
        config |= {
            "sasl.mechanism": access.sasl_mechanism,
            "sasl.username": access.username,
            "sasl.password": access.password,
        }
    if access.ssl_ca_location is not None:
        config["ssl.ca.location"] = access.ssl_ca_location
    return config


def producer_config(access: KafkaAccess, *, linger_ms: int = 0) -> Config:
    """A producer whose acknowledged records are on every in-sync replica, never doubled."""
    return client_config(access) | {
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
