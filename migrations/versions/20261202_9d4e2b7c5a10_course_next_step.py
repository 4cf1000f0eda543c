"""What a family is asked to do once its child has a seat: a course's `next_step` (join
the course's group, add the teacher's contact, or read a message), the message
(`next_step_text`) and the QR code of the teacher's chat contact (`teacher_qr`, with its
content type and time, as the cover picture is kept). Existing courses keep today's
behaviour: the group.

Revision ID: 9d4e2b7c5a10
Revises: 6b8c01ab2fd6
Create Date: 2026-12-01 15:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '9d4e2b7c5a10'
down_revision: str | None = '6b8c01ab2fd6'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.add_column(sa.Column('next_step', sa.Enum('group', 'teacher', 'message', name='nextstep', native_enum=False, length=16), nullable=False, server_default='group'))
        batch_op.add_column(sa.Column('next_step_text', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('teacher_qr', sa.LargeBinary(), nullable=True))
        batch_op.add_column(sa.Column('teacher_qr_content_type', sa.String(length=32), nullable=True))
        batch_op.add_column(sa.Column('teacher_qr_updated_at', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.alter_column('next_step', server_default=None)


def downgrade() -> None:
    with op.batch_alter_table('courses', schema=None) as batch_op:
        batch_op.drop_column('teacher_qr_updated_at')
        batch_op.drop_column('teacher_qr_content_type')
        batch_op.drop_column('teacher_qr')
        batch_op.drop_column('next_step_text')
        batch_op.drop_column('next_step')
