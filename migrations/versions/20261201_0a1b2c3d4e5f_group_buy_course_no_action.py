"""A group buy's course is protected by NO ACTION instead of RESTRICT

Both refuse to delete a course that a group buy sells, but RESTRICT does so at once, even
when the group buy is being deleted by the same statement: deleting an institution (its
rows go by ON DELETE CASCADE) failed on SQLite whenever the cascade reached the courses
before the group buys. NO ACTION checks at the end of the statement.

Revision ID: 0a1b2c3d4e5f
Revises: f8a9b0c1d2e3
Create Date: 2026-12-01 05:45:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = '0a1b2c3d4e5f'
down_revision: str | None = 'f8a9b0c1d2e3'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NAME = 'fk_group_buys_institution_id_course_id_courses'


def _course_key(ondelete: str | None) -> None:
    with op.batch_alter_table('group_buys') as batch:
        batch.drop_constraint(NAME, type_='foreignkey')
        batch.create_foreign_key(
            NAME,
            'courses',
            ['institution_id', 'course_id'],
            ['institution_id', 'id'],
            ondelete=ondelete,
        )


def upgrade() -> None:
    _course_key(None)


def downgrade() -> None:
    _course_key('RESTRICT')
