"""Settings of the ingest gateway. Environment: ``PEACELAND_GATEWAY_<NAME>``."""

from __future__ import annotations

import hashlib
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import SettingsConfigDict

from peaceland.tenants.access import KafkaAccessSettings
from peaceland.tenants.environment import env_prefix
from peaceland.tenants.forces import validate_force_id
from peaceland.tenants.kafka import KafkaAccess


def key_digest(key: str) -> str:
    """How a drone key is compared and kept in memory: never as itself."""
    return hashlib.sha256(key.encode()).hexdigest()


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
    #: Drone keys by force id, as JSON: ``{"lyon": ["key-1", "key-2"]}``. Until the
    #: tenant-management API manages keys, they come from configuration.
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
                if secret in seen:
                    raise ValueError("one drone key is given to two forces")
                seen.add(secret)
        return value

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

    def force_by_key_digest(self) -> dict[str, str]:
        return {
            key_digest(key.get_secret_value()): force_id
            for force_id, keys in self.drone_keys.items()
            for key in keys
        }
