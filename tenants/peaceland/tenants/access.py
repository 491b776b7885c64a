"""The servers every deployable reaches, and the credentials it signs in with, from settings.

Every process of the platform reads the same variables, without its component's prefix:
``KAFKA_BOOTSTRAP_SERVERS``, ``KAFKA_USERNAME``, ``KAFKA_PASSWORD`` … (see
``peaceland.tenants.environment``). A credential is given as itself or, as Kubernetes mounts
a Secret, as a file holding it (``KAFKA_PASSWORD_FILE``): the file is read at start, and a
process given a rotated credential is restarted (the operator rolls its Deployment), except
the gateway, which reads its Kafka files again (``current_kafka_access``). Passwords are
``SecretStr``: never printed with the settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

from pydantic import Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsError

from peaceland.tenants.cassandra import CassandraAccess
from peaceland.tenants.environment import (
    CASSANDRA_CONTACT_POINTS,
    CASSANDRA_LOCAL_DC,
    CASSANDRA_PASSWORD,
    CASSANDRA_SSL_CA_LOCATION,
    CASSANDRA_USERNAME,
    KAFKA_BOOTSTRAP_SERVERS,
    KAFKA_PASSWORD,
    KAFKA_SASL_MECHANISM,
    KAFKA_SECURITY_PROTOCOL,
    KAFKA_SSL_CA_LOCATION,
    KAFKA_USERNAME,
    file_variable,
)
from peaceland.tenants.kafka import KafkaAccess, SaslMechanism, SecurityProtocol


def _secret_file(path: Path | None, what: str) -> str | None:
    if path is None:
        return None
    try:
        value = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ValueError(f"{what} file {path} cannot be read: {exc.strerror}") from None
    if not value:
        raise ValueError(f"{what} file {path} is empty")
    return value


def secret_value(value: SecretStr | None, path: Path | None, what: str) -> str | None:
    """A secret given as itself or as a file (a mounted Secret's item, read now, so that a
    rotation is taken up): the file's when given. ValueError when the file cannot be read or
    is empty."""
    if path is not None:
        return _secret_file(path, what)
    return value.get_secret_value() if value is not None else None


def _credentials(
    server: str,
    username: str | None,
    password: SecretStr | None,
    username_file: Path | None,
    password_file: Path | None,
) -> tuple[str | None, SecretStr | None]:
    """One server's username and password: the files' when given (read now, the username
    read again after the password, so that a pair being replaced is refused), else the
    values; both or neither."""
    if username_file is not None:
        username = _secret_file(username_file, f"{server} username")
    if password_file is not None:
        password = SecretStr(_secret_file(password_file, f"{server} password") or "")
        if (
            username_file is not None
            and _secret_file(username_file, f"{server} username") != username
        ):
            raise ValueError(f"the {server} credential files are being replaced")
    if (username is None) != (password is None):
        variables = f"{server.upper()}_USERNAME and {server.upper()}_PASSWORD"
        raise ValueError(f"{variables} (or their _FILE) go together: one is set without the other")
    return username, password


class KafkaAccessSettings(BaseSettings):
    """Where Kafka is and who this process is to it."""

    kafka_bootstrap_servers: str = Field(min_length=1, validation_alias=KAFKA_BOOTSTRAP_SERVERS)
    kafka_security_protocol: SecurityProtocol | None = Field(
        default=None, validation_alias=KAFKA_SECURITY_PROTOCOL
    )
    kafka_sasl_mechanism: SaslMechanism = Field(
        default="SCRAM-SHA-512", validation_alias=KAFKA_SASL_MECHANISM
    )
    kafka_username: str | None = Field(default=None, validation_alias=KAFKA_USERNAME)
    kafka_password: SecretStr | None = Field(default=None, validation_alias=KAFKA_PASSWORD)
    kafka_username_file: Path | None = Field(
        default=None, validation_alias=file_variable(KAFKA_USERNAME)
    )
    kafka_password_file: Path | None = Field(
        default=None, validation_alias=file_variable(KAFKA_PASSWORD)
    )
    kafka_ssl_ca_location: Path | None = Field(default=None, validation_alias=KAFKA_SSL_CA_LOCATION)

    @model_validator(mode="after")
    def _kafka_credentials(self) -> KafkaAccessSettings:
        self.kafka_username, self.kafka_password = self._kafka_signed_in()
        return self

    def _kafka_signed_in(self) -> tuple[str | None, SecretStr | None]:
        return _credentials(
            "Kafka",
            self.kafka_username,
            self.kafka_password,
            self.kafka_username_file,
            self.kafka_password_file,
        )

    def current_kafka_access(self) -> KafkaAccess:
        """``kafka_access`` with the credential files read again now: a long-lived
        process that can switch producers (the gateway) follows a rotation with it."""
        return self.kafka_access(*self._kafka_signed_in())

    def kafka_access(
        self, username: str | None = None, password: SecretStr | None = None
    ) -> KafkaAccess:
        """The access these settings give; ``username``/``password``: others, read since."""
        username, password = username or self.kafka_username, password or self.kafka_password
        return KafkaAccess(
            self.kafka_bootstrap_servers,
            username=username,
            password=password.get_secret_value() if password else None,
            security_protocol=self.kafka_security_protocol,
            sasl_mechanism=self.kafka_sasl_mechanism,
            ssl_ca_location=str(self.kafka_ssl_ca_location) if self.kafka_ssl_ca_location else None,
        )


class CassandraAccessSettings(BaseSettings):
    """Where Cassandra is, which data centre serves this process, and its role there."""

    cassandra_contact_points: str = Field(min_length=1, validation_alias=CASSANDRA_CONTACT_POINTS)
    #: The data centre whose nodes serve this process's requests (LOCAL_* levels count its
    #: replicas only).
    cassandra_local_dc: str = Field(
        default="datacenter1", min_length=1, validation_alias=CASSANDRA_LOCAL_DC
    )
    cassandra_username: str | None = Field(default=None, validation_alias=CASSANDRA_USERNAME)
    cassandra_password: SecretStr | None = Field(default=None, validation_alias=CASSANDRA_PASSWORD)
    cassandra_username_file: Path | None = Field(
        default=None, validation_alias=file_variable(CASSANDRA_USERNAME)
    )
    cassandra_password_file: Path | None = Field(
        default=None, validation_alias=file_variable(CASSANDRA_PASSWORD)
    )
    cassandra_ssl_ca_location: Path | None = Field(
        default=None, validation_alias=CASSANDRA_SSL_CA_LOCATION
    )

    @model_validator(mode="after")
    def _cassandra_credentials(self) -> CassandraAccessSettings:
        self.cassandra_username, self.cassandra_password = _credentials(
            "Cassandra",
            self.cassandra_username,
            self.cassandra_password,
            self.cassandra_username_file,
            self.cassandra_password_file,
        )
        return self

    def cassandra_access(self) -> CassandraAccess:
        password = self.cassandra_password
        return CassandraAccess(
            self.cassandra_contact_points,
            local_dc=self.cassandra_local_dc,
            username=self.cassandra_username,
            password=password.get_secret_value() if password else None,
            ssl_ca_location=str(self.cassandra_ssl_ca_location)
            if self.cassandra_ssl_ca_location
            else None,
        )


class ServerAccessSettings(KafkaAccessSettings, CassandraAccessSettings):
    """Both servers: what the consumers and the operator reach."""


_Settings = TypeVar("_Settings", bound=BaseSettings)


def settings_or_exit(settings: type[_Settings], process: str) -> _Settings:
    """A deployable's settings read from its environment, or the process ends at once
    (exit code 1) with each wrong setting named and why, and no traceback: the setting is
    what is wrong, not the code."""
    try:
        return settings()
    except ValidationError as exc:
        # Each setting and why, never its value: a password or a key given beside a wrong
        # setting would otherwise be printed into the logs with it.
        reasons = "\n".join(
            f"  {'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
            for error in exc.errors(include_input=False, include_url=False)
        )
        raise SystemExit(f"peaceland {process}: bad settings:\n{reasons}") from None
    except SettingsError as exc:  # a setting that is not the JSON its type needs
        reason = str(exc).split(" from source ", 1)[0]
        raise SystemExit(f"peaceland {process}: bad settings:\n  {reason}") from None
