"""Payments say why they failed (failure_code) and whether Stripe still has to be asked
for a stray hold (stripe_check_pending)

Revision ID: d5e6f7a8b9c0
Revises: c4d2e3f5a6b7
Create Date: 2026-12-01 01:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'd5e6f7a8b9c0'
down_revision: str | None = 'c4d2e3f5a6b7'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.add_column(sa.Column('failure_code', sa.String(length=40), nullable=True))
        batch.add_column(
            sa.Column(
                'stripe_check_pending', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table('payments') as batch:
        batch.alter_column('stripe_check_pending', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('payments') as batch:
        batch.drop_column('stripe_check_pending')
        batch.drop_column('failure_code')
