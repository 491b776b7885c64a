"""Settings of the ingest gateway. Environment: ``PEACELAND_GATEWAY_<NAME>``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import SettingsConfigDict

from peaceland.services.gateway.credentials import SecretCredentials
from peaceland.tenants.access import KafkaAccessSettings, secret_value
from peaceland.tenants.drone_keys import key_digest, key_id_of
from peaceland.tenants.environment import env_prefix
from peaceland.tenants.forces import validate_force_id
from peaceland.tenants.kafka import KafkaAccess


class GatewaySettings(KafkaAccessSettings):
    """One gateway serves every force whose drone keys it holds.

    Kafka's address and the gateway's own credentials (``KAFKA_BOOTSTRAP_SERVERS``,
    ``KAFKA_USERNAME`` …, ``peaceland.tenants.access``) are read without the prefix.
    """

    model_config = SettingsConfigDict(env_prefix=env_prefix("gateway"), extra="ignore")

    #: A folder holding, for each force, ``<force id>/username`` and ``<force id>/password``:
    #: the force's gateway principal (the operator's Secret ``<force>-credentials``, keys
    #: ``gateway.kafka-username`` and ``gateway.kafka-password``). A force's reports are produced as
    #: that principal, which the brokers let write to that force's reports topic only. None:
    #: every force's as the gateway's own credentials (a gateway serving one force).
    force_credentials_dir: Path | None = None
    #: In a cluster, instead: the namespace of the forces' credentials Secrets
    #: (``<force>-credentials``, keys ``gateway.kafka-username`` and ``gateway.kafka-password``,
    #: written by the operator), read through the Kubernetes API with the pod's ServiceAccount
    #: (``get`` on Secrets there, by name) and again every ``force_credentials_refresh_seconds``.
    force_credentials_namespace: str | None = None
    force_credentials_refresh_seconds: float = Field(default=5.0, gt=0, le=300)
    #: A kubeconfig for that; none: the pod's ServiceAccount.
    kubeconfig: Path | None = None
    #: The control plane (``http://api:8090``): drone keys come from its feed, and usage
    #: goes to it, and no key is taken from configuration. None: a development harness,
    #: which takes only ``drone_keys``.
    control_plane_url: str | None = None
    #: The gateways' service token on the control plane (or a file holding it, re-read
    #: at each request of the feed).
    control_plane_token: SecretStr | None = None
    control_plane_token_file: Path | None = None
    #: How often the drone-key feed is read: the longest a revocation waits, plus one read.
    key_refresh_seconds: float = Field(default=1.0, gt=0, le=60)
    #: Seconds of its plan's rate a force may send at once (a drone's buffer emptied after
    #: an outage), beyond its sustained reports a second.
    quota_burst_seconds: float = Field(default=10.0, ge=1, le=3_600)
    #: How often accepted-report counts are posted to the control plane.
    usage_interval_seconds: float = Field(default=5.0, gt=0, le=300)
    #: Development harness only (benchmarks, fault tests): keys by force id, as JSON
    #: ``{"lyon": ["key-1"]}``, each speaking for every drone of its force. Refused beside
    #: ``control_plane_url``: a platform takes its keys from the control plane only.
    drone_keys: dict[str, list[SecretStr]] = Field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Largest request body accepted, in bytes.
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    #: Most reports in one batch.
    max_batch: int = Field(default=1_000, ge=1, le=100_000)
    #: How long Kafka may take to acknowledge before the gateway answers 503.
    delivery_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    #: Bytes of requests one force may have in flight (read, parsed, waiting for Kafka);
    #: past it the force's requests get 429 at once, without touching the others'.
    max_inflight_bytes_per_force: int = Field(default=16 * 1024 * 1024, ge=1024)
    #: Bytes of requests all forces together may have in flight: bounds the gateway's
    #: memory (about ten times this at worst, parsed) and its producer queue (twice this).
    max_inflight_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)

    @field_validator("drone_keys")
    @classmethod
    def _keys(cls, value: dict[str, list[SecretStr]]) -> dict[str, list[SecretStr]]:
        seen: set[str] = set()
        for force_id, keys in value.items():
            validate_force_id(force_id)
            for key in keys:
                secret = key.get_secret_value()
                if len(secret) < 16:
                    raise ValueError(f"a drone key of {force_id} is shorter than 16 characters")
                if key_id_of(secret) is not None:
                    raise ValueError("a drone key issued by the control plane cannot be configured")
                if secret in seen:
                    raise ValueError("one drone key is given to two forces")
                seen.add(secret)
        return value

    @model_validator(mode="after")
    def _control_plane(self) -> GatewaySettings:
        if self.force_credentials_dir is not None and self.force_credentials_namespace:
            raise ValueError(
                "force_credentials_dir and force_credentials_namespace are two sources of the "
                "forces' credentials: give one"
            )
        if self.control_plane_url is not None and self.drone_keys:
            raise ValueError(
                "drone_keys cannot be configured on a gateway that has a control plane: its "
                "keys come from the control plane only (drone_keys serve a development "
                "harness without one)"
            )
        if self.control_plane_url is not None and (
            self.control_plane_token is None and self.control_plane_token_file is None
        ):
            raise ValueError(
                "control_plane_url needs control_plane_token or control_plane_token_file"
            )
        return self

    def current_control_plane_token(self) -> str:
        """The file read again at each call (a rotated Secret); ValueError while it cannot
        be read (the feed and the usage poster try again later)."""
        token = secret_value(
            self.control_plane_token, self.control_plane_token_file, "the control plane token"
        )
        return token or ""

    def force_access(self, force_id: str | None) -> KafkaAccess:
        """How the producer of ``force_id`` signs in (None: the gateway's own access).

        The files are read again at each call (the sender asks every few seconds), so a
        rotation's new credentials are taken up without a restart. A force without
        credentials in ``force_credentials_dir`` is refused by Kafka (its producer has none)
        rather than sent as another principal. Raises ValueError on an unreadable file.
        """
        access = self.current_kafka_access()
        if force_id is None or self.force_credentials_dir is None:
            return access
        folder = self.force_credentials_dir / validate_force_id(force_id)
        if not folder.exists():
            return access.as_user(f"{force_id}.gateway.missing", "")
        try:
            # A rotation replaces the two files one after the other: a pair is taken only
            # when the username reads the same before and after its password.
            username = (folder / "username").read_text(encoding="utf-8").strip()
            password = (folder / "password").read_text(encoding="utf-8").strip()
            again = (folder / "username").read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ValueError(f"credentials of {force_id} unreadable: {exc.strerror}") from None
        if again != username:
            raise ValueError(f"credentials of {force_id} are being replaced")
        return access.as_user(username, password)

    def force_access_from(self, secrets: SecretCredentials, force_id: str | None) -> KafkaAccess:
        """How the producer of ``force_id`` signs in, its pair read from its Secret
        (``force_credentials_namespace``); a force without one is refused by Kafka (its
        producer has no credentials) rather than sent as another principal."""
        access = self.current_kafka_access()
        if force_id is None:
            return access
        pair = secrets.get(force_id)
        if pair is None:
            return access.as_user(f"{force_id}.gateway.missing", "")
        return access.as_user(*pair)

    def force_by_key_digest(self) -> dict[str, str]:
        return {
            key_digest(key.get_secret_value()): force_id
            for force_id, keys in self.drone_keys.items()
            for key in keys
        }
