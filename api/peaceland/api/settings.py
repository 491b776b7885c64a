"""Settings of the control plane. Environment: ``PEACELAND_API_<NAME>``."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from peaceland.tenants.access import secret_value
from peaceland.tenants.cassandra import CassandraAccess
from peaceland.tenants.environment import env_prefix
from peaceland.tenants.kafka import KafkaAccess, SaslMechanism, SecurityProtocol


class ApiSettings(BaseSettings):
    """One control plane serves every police force of a platform."""

    model_config = SettingsConfigDict(env_prefix=env_prefix("api"), extra="ignore")

    #: PostgreSQL, as a SQLAlchemy or libpq URL (``postgresql://user:pass@host/db``); also
    #: read from ``DATABASE_URL``.
    database_url: str = Field(
        validation_alias=AliasChoices("PEACELAND_API_DATABASE_URL", "DATABASE_URL")
    )
    #: The Kubernetes namespace the platform's PoliceForce resources live in.
    namespace: str = "peaceland"
    #: A kubeconfig file; none: the pod's own ServiceAccount (in a cluster).
    kubeconfig: Path | None = None
    host: str = "127.0.0.1"
    port: int = Field(default=8090, ge=1, le=65535)
    #: How long a login token lives, in seconds.
    token_ttl_seconds: int = Field(default=3_600, ge=60, le=86_400)
    #: The gateways' token (or a file holding it): the one credential that may read the
    #: drone-key feed and post usage. Shared with the gateways through a Secret.
    gateway_token: SecretStr | None = None
    gateway_token_file: Path | None = None
    #: The first platform admin, made at start when no platform admin exists yet.
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password_file: Path | None = None
    #: How often forces deleted with kubectl are looked for (their keys revoked, their
    #: people's roles removed: ``peaceland.api.reconcile``); 0: never.
    reconcile_seconds: float = Field(default=10.0, ge=0, le=3_600)
    #: How long a force's resource must have been absent before the API forgets it.
    reconcile_absent_seconds: float = Field(default=60.0, ge=0, le=86_400)
    #: Password checks at once (each 64 MiB, ~0.2 s of CPU); more wait a second, then 429.
    concurrent_sign_ins: int = Field(default=4, ge=1, le=64)
    #: Sign-in attempts a minute per client address and per account (then 429).
    sign_ins_per_minute: int = Field(default=10, ge=1, le=10_000)
    #: What a force the API creates gets besides what the request says: the platform's
    #: cluster decides its copies (3 in production; 1 on a one-node local stack) and image.
    kafka_replication_factor: int = Field(default=3, ge=1, le=5)
    cassandra_replication_factor: int = Field(default=3, ge=1, le=9)
    consumer_image: str | None = None
    #: Where the forces' data is, for the alert routes and the live feeds. Each force's
    #: data is read as that force's own dashboard principal and Cassandra role (from its
    #: credentials Secret), so the servers themselves refuse another force's. None: the
    #: alert routes answer 503.
    kafka_bootstrap_servers: str | None = None
    kafka_ssl_ca_location: Path | None = None
    #: How the forces' principals sign in: None guesses from the CA (SASL_SSL with one,
    #: SASL_PLAINTEXT without); set it as the operator's (SASL_SSL against brokers whose
    #: certificates a public CA signed).
    kafka_security_protocol: SecurityProtocol | None = None
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    cassandra_contact_points: str | None = None
    cassandra_local_dc: str = Field(default="datacenter1", min_length=1)
    cassandra_ssl_ca_location: Path | None = None
    #: Timeout of one request to Kafka or Cassandra, in seconds.
    data_timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    #: How often each force's alerts topic is read for the alerts it raised (the invoice's
    #: count); 0: never.
    alert_meter_seconds: float = Field(default=10.0, ge=0, le=3_600)
    #: How often transitions a crash kept off the lifecycle topic are published; 0: never.
    lifecycle_publish_seconds: float = Field(default=5.0, ge=0, le=3_600)
    #: A MapLibre style URL for the dashboards' basemap (a tile server of the force's);
    #: none: the bundled offline basemap (land outlines and the zone grid).
    dashboard_style_url: str | None = None
    #: Live feeds (dashboard pages) one process serves at once: each holds a thread and a
    #: Kafka client; more are told to come back.
    live_feeds: int = Field(default=200, ge=1, le=10_000)
    #: How far back a force's drone reader starts (drones report once a minute), and how
    #: long it keeps reading after the last page that wanted it left.
    drones_lookback_seconds: float = Field(default=180.0, ge=60, le=86_400)
    drones_linger_seconds: float = Field(default=60.0, ge=0, le=3_600)
    #: The analytics lake the forces' lake consumers write (docs/analytics.md): the
    #: statistics and SQL routes read it. None: they answer 503.
    lake_uri: str | None = None
    #: Where a lake on an object store (``s3://``) is copied for its engines, a folder per
    #: force (``peaceland.analytics.mirror``): a disk that holds the forces' lakes, in a
    #: folder of this user's (not a shared one such as /tmp, where another user could
    #: make it first).
    lake_mirror_dir: Path = Field(
        default_factory=lambda: (
            Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
            / "peaceland"
            / "lake-mirror"
        )
    )
    #: Analytics questions running at once in this process, and per force (each a process
    #: of its own, held to ``analytics_memory_mb``); more are told to come back (429).
    analytics_concurrency: int = Field(default=2, ge=1, le=64)
    analytics_per_force: int = Field(default=1, ge=1, le=64)
    analytics_memory_mb: int = Field(default=1_024, ge=64, le=262_144)
    #: Questions (statistics and SQL) one person may ask a minute; more get 429.
    analytics_per_minute: int = Field(default=30, ge=1, le=10_000)
    #: The longest an analyst's SQL may run, and a statistic, in seconds.
    sql_seconds_max: float = Field(default=60.0, gt=0, le=600)
    statistic_seconds: float = Field(default=60.0, gt=0, le=600)

    @field_validator("database_url")
    @classmethod
    def _sqlalchemy_url(cls, value: str) -> str:
        """psycopg 3 is the driver: a plain ``postgresql://`` URL is taken as such."""
        for plain in ("postgresql://", "postgres://"):
            if value.startswith(plain):
                return "postgresql+psycopg://" + value[len(plain) :]
        if not value.startswith("postgresql+psycopg://"):
            raise ValueError("a PostgreSQL URL (postgresql://user:password@host:port/database)")
        return value

    def data_servers(self) -> tuple[KafkaAccess, CassandraAccess] | None:
        """Where the forces' data is (signed in as no one yet), when configured."""
        if self.kafka_bootstrap_servers is None or self.cassandra_contact_points is None:
            return None
        kafka = KafkaAccess(
            self.kafka_bootstrap_servers,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            ssl_ca_location=str(self.kafka_ssl_ca_location) if self.kafka_ssl_ca_location else None,
        )
        cassandra = CassandraAccess(
            self.cassandra_contact_points,
            local_dc=self.cassandra_local_dc,
            ssl_ca_location=(
                str(self.cassandra_ssl_ca_location) if self.cassandra_ssl_ca_location else None
            ),
        )
        return kafka, cassandra

    def current_gateway_token(self) -> str | None:
        """The gateways' token, the file read again at each call (a rotated Secret); None
        while it cannot be read (no gateway is let in meanwhile)."""
        try:
            return secret_value(self.gateway_token, self.gateway_token_file, "the gateways' token")
        except ValueError:
            return None
