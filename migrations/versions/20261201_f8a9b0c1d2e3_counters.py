"""Counters kept as things happen, so that busy pages and posts never count rows: a
lesson's taken seats, a campaign's seats sold, page views; outbox claims for deliverers

Revision ID: f8a9b0c1d2e3
Revises: e7f8a9b0c1d2
Create Date: 2026-12-01 03:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'f8a9b0c1d2e3'
down_revision: str | None = 'e7f8a9b0c1d2'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTERS = [('lessons', 'taken_seats'), ('group_buys', 'seats_sold'), ('group_buys', 'view_count'),
            ('courses', 'view_count')]


def upgrade() -> None:
    for table, column in COUNTERS:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column(column, sa.Integer(), nullable=False, server_default='0'))
    # Row-level security holds the owner too: these updates see every row only as a role
    # with BYPASSRLS (the owner, as README's "Database roles" says), as migrations run.
    op.execute(
        "UPDATE lessons SET taken_seats = (SELECT count(*) FROM seats WHERE seats.lesson_id = "
        "lessons.id AND seats.status IN ('booked', 'held'))"
    )
    op.execute(
        "UPDATE group_buys SET seats_sold = (SELECT count(*) FROM team_members m JOIN teams t "
        "ON t.id = m.team_id WHERE t.group_buy_id = group_buys.id AND m.status = 'captured')"
    )
    for table, column in COUNTERS:
        with op.batch_alter_table(table) as batch:
            batch.alter_column(column, server_default=None)
    with op.batch_alter_table('outbox_messages') as batch:
        batch.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('outbox_messages') as batch:
        batch.drop_column('claimed_until')
    for table, column in reversed(COUNTERS):
        with op.batch_alter_table(table) as batch:
            batch.drop_column(column)
