"""Storage per day, and the audit trail searchable by target.

The operator measures the bytes each force's keyspace takes on disk; a day keeps the most
it took, for the invoice. The usage recorder asks whether a force was forgotten since its
resource was made: an index on (target, at) answers it without a scan.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("daily_usage", sa.Column("storage_bytes", sa.BigInteger(), nullable=True))
    op.create_index("ix_audit_events_target", "audit_events", ["target", "at"])


def downgrade() -> None:
    op.drop_index("ix_audit_events_target", table_name="audit_events")
    op.drop_column("daily_usage", "storage_bytes")
