"""Seats held for a paid registration's payment

Revision ID: 1d45fe8a02c9
Revises: 6db0f5a888ff
Create Date: 2026-11-23 14:03:58.197127
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '1d45fe8a02c9'
down_revision: str | None = '6db0f5a888ff'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Batch mode: SQLite (development) adds a foreign key only by rebuilding the table.
    with op.batch_alter_table('seats') as batch:
        batch.add_column(sa.Column('payment_id', sa.Integer(), nullable=True))
        batch.create_index(batch.f('ix_seats_payment_id'), ['payment_id'], unique=False)
        batch.create_foreign_key(batch.f('fk_seats_payment_id_payments'), 'payments', ['payment_id'], ['id'], ondelete='SET NULL')


def downgrade() -> None:
    with op.batch_alter_table('seats') as batch:
        batch.drop_constraint(batch.f('fk_seats_payment_id_payments'), type_='foreignkey')
        batch.drop_index(batch.f('ix_seats_payment_id'))
        batch.drop_column('payment_id')
