"""The platform's administrator credentials on the stack's own Kafka, Cassandra and S3.

Made once per state directory, at random, in ``<state>/credentials/`` (mode 0700, each file
0600): never in the repository, never in an environment printed by a command. The operator,
the benchmarks and the tests sign in with them; every force's processes sign in as the
force's own principals, which the operator makes with them.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Final

#: The administrator's name on every server: Kafka's one super user, Cassandra's superuser,
#: the S3 store's access key id.
ADMIN_USER: Final = "peaceland-admin"


@dataclass(frozen=True, slots=True)
class AdminCredentials:
    """Where the administrator's passwords are; :func:`admin_credentials` makes them."""

    folder: Path
    username: str = ADMIN_USER

    @property
    def kafka_password_file(self) -> Path:
        return self.folder / "kafka-admin-password"

    @property
    def cassandra_password_file(self) -> Path:
        return self.folder / "cassandra-admin-password"

    @property
    def s3_secret_file(self) -> Path:
        """The secret key of the administrator's S3 access key (whose id is ``username``)."""
        return self.folder / "s3-admin-secret"

    @property
    def kafka_password(self) -> str:
        return self.kafka_password_file.read_text(encoding="utf-8").strip()

    @property
    def cassandra_password(self) -> str:
        return self.cassandra_password_file.read_text(encoding="utf-8").strip()

    @property
    def s3_secret(self) -> str:
        return self.s3_secret_file.read_text(encoding="utf-8").strip()


def admin_credentials(state_dir: Path) -> AdminCredentials:
    """The administrator's credentials under ``state_dir``, made the first time (two
    processes at once agree: the first file written wins)."""
    folder = state_dir / "credentials"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    folder.chmod(0o700)
    credentials = AdminCredentials(folder)
    for path in (
        credentials.kafka_password_file,
        credentials.cassandra_password_file,
        credentials.s3_secret_file,
    ):
        _create_once(path, secrets.token_urlsafe(32))
    return credentials


def _create_once(path: Path, value: str) -> None:
    """Write ``value`` whole to a file of our own, then link it into place: a reader never
    sees an empty file, and of two writers the first one's value stays."""
    if path.exists():
        path.chmod(0o600)
        return
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(value + "\n")
    try:
        os.link(partial, path)
    except FileExistsError:
        pass
    finally:
        partial.unlink()
