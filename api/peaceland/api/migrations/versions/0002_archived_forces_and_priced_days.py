"""Archived forces and priced days.

A deleted force's data is kept under an archived name (``<id>~<seconds>``, up to 64
characters), so that a force sold again under the same id starts empty; each day of usage
keeps the plan and prices it was counted under, so that an invoice does not change when a
plan does.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_FORCE_COLUMNS = (
    ("forces", "id", False),
    ("memberships", "force_id", False),
    ("drones", "force_id", False),
    ("drone_keys", "force_id", False),
    ("audit_events", "force_id", True),
    ("daily_usage", "force_id", False),
)


def upgrade() -> None:
    for table, column, nullable in _FORCE_COLUMNS:
        op.alter_column(
            table,
            column,
            type_=sa.String(length=64),
            existing_type=sa.String(length=40),
            existing_nullable=nullable,
        )
    op.add_column("daily_usage", sa.Column("plan_id", sa.String(length=40), nullable=True))
    op.add_column("daily_usage", sa.Column("monthly_price_cents", sa.BigInteger(), nullable=True))
    op.add_column(
        "daily_usage",
        sa.Column("price_per_million_reports_cents", sa.BigInteger(), nullable=True),
    )
    # The days counted before: priced from their force's plan as it is now (the best known).
    op.execute(
        """
        UPDATE daily_usage AS d
           SET plan_id = p.id,
               monthly_price_cents = p.monthly_price_cents,
               price_per_million_reports_cents = p.price_per_million_reports_cents
          FROM forces AS f JOIN plans AS p ON p.id = f.plan_id
         WHERE f.id = d.force_id
        """
    )


def downgrade() -> None:
    """The prices go; the archived forces stay, and so do the wider columns they need: the
    previous code reads them as what they are (deleted forces, retired drones, revoked keys,
    another force's audit trail) and an audit trail is not destroyed by a rollback."""
    op.drop_column("daily_usage", "price_per_million_reports_cents")
    op.drop_column("daily_usage", "monthly_price_cents")
    op.drop_column("daily_usage", "plan_id")
