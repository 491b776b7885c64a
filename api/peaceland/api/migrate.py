"""Bringing the database to the schema this code expects, or back: Alembic, from code.

``python -m peaceland.api migrate`` upgrades to the newest revision before a new version
serves (a Helm hook or an init container in a cluster; ``peaceland api`` locally). Each
revision runs in its own transaction: PostgreSQL's DDL is transactional, so a failed
upgrade leaves the database at the previous revision, never half way.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Final

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

#: An advisory lock taken while migrating: two processes starting at once migrate one at a time.
_MIGRATION_LOCK: Final = 7_354_210_001


def _config(engine: Engine) -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("peaceland.api") / "migrations"))
    config.attributes["engine"] = engine
    return config


def _run(engine: Engine, action: str, revision: str) -> None:
    config = _config(engine)
    with engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({_MIGRATION_LOCK})")
        connection.commit()
        try:
            config.attributes["connection"] = connection
            if action == "upgrade":
                command.upgrade(config, revision)
            else:
                command.downgrade(config, revision)
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_MIGRATION_LOCK})")
            connection.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    _run(engine, "upgrade", revision)


def downgrade(engine: Engine, revision: str) -> None:
    _run(engine, "downgrade", revision)


def current(engine: Engine) -> str | None:
    """The database's revision, or None for an empty database."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def head(engine: Engine) -> str:
    found = ScriptDirectory.from_config(_config(engine)).get_current_head()
    if found is None:
        raise RuntimeError("no migration revision is packaged")
    return found
