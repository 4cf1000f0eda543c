"""Payments carry their own deadline (pay_by)

Revision ID: b3f1c2d4e5a6
Revises: 1d45fe8a02c9
Create Date: 2026-12-01 00:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'b3f1c2d4e5a6'
down_revision: str | None = '1d45fe8a02c9'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The deadline every payment had until now, computed from config (PAYMENT_PENDING_MINUTES).
EARLIER_WINDOW_MINUTES = 15


def upgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('pay_by', sa.DateTime(timezone=True), nullable=True))
    if op.get_bind().dialect.name == 'sqlite':
        deadline = f"strftime('%Y-%m-%d %H:%M:%f', created_at, '+{EARLIER_WINDOW_MINUTES} minutes')"
    else:
        deadline = f"created_at + interval '{EARLIER_WINDOW_MINUTES} minutes'"
    op.execute(f"UPDATE payments SET pay_by = {deadline}")
    with op.batch_alter_table('payments') as batch:
        batch.alter_column('pay_by', existing_type=sa.DateTime(timezone=True), nullable=False)


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('pay_by')
