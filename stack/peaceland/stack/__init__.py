"""The local stack: real Kafka, Cassandra and PostgreSQL servers started by the project itself.

Our machines have no Docker engine, so the servers come from where they are published:
Kafka and Cassandra as jars from Maven Central run with the machine's JDK, PostgreSQL from
Debian's packages. Downloads are cached outside the repository; servers run on loopback,
with their data and logs under one state directory. Any server can be replaced by an
external one through the usual environment variables (see ``settings``).
"""

from peaceland.stack.errors import StackError
from peaceland.stack.settings import StackSettings
from peaceland.stack.stack import CassandraRing, Endpoints, KafkaCluster, ServerStatus, Stack

__all__ = [
    "CassandraRing",
    "Endpoints",
    "KafkaCluster",
    "ServerStatus",
    "Stack",
    "StackError",
    "StackSettings",
]
