"""Group buys that charge at once (`group_buys.is_charged_at_once`): joining takes the
payment, a team that fills needs no capture, a team that fails is refunded in full; the
way to take WeChat Pay and Alipay, which cannot hold money. Existing campaigns keep
holding (false). A member paid at once holds an active place (`charged`), so the partial
unique index of one active place per family and team counts it too.

Downgrading drops the column; members already `charged` or `refunded` keep those words
in their VARCHAR status, which the earlier code does not know.

Revision ID: 6b8c01ab2fd6
Revises: 3c1f0a9d2b7e
Create Date: 2026-12-02 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '6b8c01ab2fd6'
down_revision: str | None = '3c1f0a9d2b7e'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = 'uq_team_members_active_contact'
ACTIVE_BEFORE = "status IN ('pending', 'authorised', 'captured')"
ACTIVE_NOW = "status IN ('pending', 'authorised', 'charged', 'captured')"


def _active_place_index(where: str) -> None:
    op.drop_index(INDEX, table_name='team_members')
    op.create_index(
        INDEX,
        'team_members',
        ['team_id', 'contact_id'],
        unique=True,
        postgresql_where=sa.text(where),
        sqlite_where=sa.text(where),
    )


def upgrade() -> None:
    with op.batch_alter_table('group_buys') as batch:
        batch.add_column(
            sa.Column(
                'is_charged_at_once', sa.Boolean(), nullable=False, server_default=sa.false()
            )
        )
    with op.batch_alter_table('group_buys') as batch:
        batch.alter_column('is_charged_at_once', server_default=None)
    _active_place_index(ACTIVE_NOW)


def downgrade() -> None:
    _active_place_index(ACTIVE_BEFORE)
    with op.batch_alter_table('group_buys') as batch:
        batch.drop_column('is_charged_at_once')
