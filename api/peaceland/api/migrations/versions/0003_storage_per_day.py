"""Storage per day, the alert meter's positions, and the audit trail searchable by target.

The operator measures the bytes each force's keyspace takes on disk; a day keeps the most
it took, for the invoice. The alert meter counts raised alerts from each force's alerts
topic and keeps where it stopped, with the topic's id. The usage recorder asks whether a
force was forgotten: an index on (target, at) answers it without a scan, built without
blocking writes to a large audit trail.

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
    op.create_table(
        "alert_meter_positions",
        sa.Column("force_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=False),
        sa.Column("topic_id", sa.String(length=64), nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("force_id", "partition", name=op.f("pk_alert_meter_positions")),
    )
    with op.get_context().autocommit_block():
        op.create_index(
            "ix_audit_events_target",
            "audit_events",
            ["target", "at"],
            postgresql_concurrently=True,
            if_not_exists=True,
        )


def downgrade() -> None:
    with op.get_context().autocommit_block():
        op.drop_index(
            "ix_audit_events_target",
            table_name="audit_events",
            postgresql_concurrently=True,
            if_exists=True,
        )
    op.drop_table("alert_meter_positions")
    op.drop_column("daily_usage", "storage_bytes")
