"""Alembic's environment: online migrations on the connection ``peaceland.api.migrate`` gives."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from peaceland.api.models import Base

connection: Connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    transaction_per_migration=True,
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
