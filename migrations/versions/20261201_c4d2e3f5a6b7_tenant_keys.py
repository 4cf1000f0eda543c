"""Children reference their parent within one institution: composite foreign keys

Every tenant table becomes UNIQUE on (institution_id, id), and every reference from one
tenant row to another becomes a foreign key on (institution_id, parent_id) to the parent's
(institution_id, id), so the database refuses a child whose institution differs from its
parent's. A nullable reference loses its ON DELETE SET NULL (which would clear
institution_id too): those parents are never deleted alone.

Revision ID: c4d2e3f5a6b7
Revises: b3f1c2d4e5a6
Create Date: 2026-12-01 00:30:00
"""

from collections.abc import Sequence
from itertools import groupby

from alembic import op


revision: str = 'c4d2e3f5a6b7'
down_revision: str | None = 'b3f1c2d4e5a6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = [
    'contact_events', 'contact_touches', 'contacts', 'courses', 'enrolments',
    'form_source_stats', 'form_submissions', 'group_buys', 'invitations', 'lead_assignees',
    'lead_forms', 'leads', 'lessons', 'lost_reasons', 'memberships', 'message_templates',
    'payment_transitions', 'payments', 'portal_sign_in_links', 'reminder_settings', 'seats',
    'stripe_accounts', 'stripe_events', 'students', 'tags', 'team_members', 'teams',
]
# (table, column, parent table, ON DELETE now, ON DELETE before)
REFERENCES = [
    ('contact_events', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('contact_tags', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('contact_tags', 'tag_id', 'tags', 'CASCADE', 'CASCADE'),
    ('contact_touches', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('contacts', 'first_touch_id', 'contact_touches', None, 'SET NULL'),
    ('contacts', 'latest_touch_id', 'contact_touches', None, 'SET NULL'),
    ('enrolments', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('enrolments', 'course_id', 'courses', 'CASCADE', 'CASCADE'),
    ('enrolments', 'student_id', 'students', 'CASCADE', 'CASCADE'),
    ('form_source_stats', 'form_id', 'lead_forms', 'CASCADE', 'CASCADE'),
    ('form_submissions', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('form_submissions', 'form_id', 'lead_forms', 'CASCADE', 'CASCADE'),
    ('form_submissions', 'lead_id', 'leads', None, 'SET NULL'),
    ('group_buys', 'course_id', 'courses', 'RESTRICT', 'RESTRICT'),
    ('leads', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('leads', 'form_id', 'lead_forms', None, 'SET NULL'),
    ('lessons', 'course_id', 'courses', 'CASCADE', 'CASCADE'),
    ('outbox_messages', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('payment_transitions', 'payment_id', 'payments', 'CASCADE', 'CASCADE'),
    ('payments', 'contact_id', 'contacts', None, 'SET NULL'),
    ('portal_sign_in_links', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('seats', 'enrolment_id', 'enrolments', 'CASCADE', 'CASCADE'),
    ('seats', 'lesson_id', 'lessons', 'CASCADE', 'CASCADE'),
    ('seats', 'payment_id', 'payments', None, 'SET NULL'),
    ('students', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('team_members', 'contact_id', 'contacts', 'CASCADE', 'CASCADE'),
    ('team_members', 'enrolment_id', 'enrolments', None, 'SET NULL'),
    ('team_members', 'payment_id', 'payments', None, 'SET NULL'),
    ('team_members', 'student_id', 'students', 'CASCADE', 'CASCADE'),
    ('team_members', 'team_id', 'teams', 'CASCADE', 'CASCADE'),
    ('teams', 'group_buy_id', 'group_buys', 'CASCADE', 'CASCADE'),
]


def _by_table():
    return groupby(REFERENCES, key=lambda reference: reference[0])


def upgrade() -> None:
    # Parents first: a composite foreign key needs the unique key it points at.
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.create_unique_constraint(f'uq_{table}_institution_id_id', ['institution_id', 'id'])
    for table, references in _by_table():
        with op.batch_alter_table(table) as batch:
            for _table, column, parent, ondelete, _before in references:
                batch.drop_constraint(f'fk_{table}_{column}_{parent}', type_='foreignkey')
                batch.create_foreign_key(
                    f'fk_{table}_institution_id_{column}_{parent}',
                    parent,
                    ['institution_id', column],
                    ['institution_id', 'id'],
                    ondelete=ondelete,
                )


def downgrade() -> None:
    for table, references in _by_table():
        with op.batch_alter_table(table) as batch:
            for _table, column, parent, _ondelete, before in references:
                batch.drop_constraint(
                    f'fk_{table}_institution_id_{column}_{parent}', type_='foreignkey'
                )
                batch.create_foreign_key(
                    f'fk_{table}_{column}_{parent}', parent, [column], ['id'], ondelete=before
                )
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(f'uq_{table}_institution_id_id', type_='unique')
