"""courses, lessons, seats, parent messages

Revision ID: 036eb5100c09
Revises: 427e2928161f
Create Date: 2026-11-23 12:32:27.302480
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '036eb5100c09'
down_revision: str | None = '427e2928161f'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('courses',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.Enum('trial', 'regular', name='coursekind', native_enum=False, length=16), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('subject', sa.String(length=60), nullable=True),
    sa.Column('grade_range', sa.String(length=60), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('cover', sa.LargeBinary(), nullable=True),
    sa.Column('cover_content_type', sa.String(length=32), nullable=True),
    sa.Column('cover_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('teacher_id', sa.Integer(), nullable=True),
    sa.Column('price_amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=False),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_courses_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['teacher_id'], ['users.id'], name=op.f('fk_courses_teacher_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_courses')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_courses_institution_id_code'))
    )
    op.create_index(op.f('ix_courses_institution_id'), 'courses', ['institution_id'], unique=False)
    op.create_index(op.f('ix_courses_teacher_id'), 'courses', ['teacher_id'], unique=False)
    op.create_table('message_templates',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=40), nullable=False),
    sa.Column('locale', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.String(length=200), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_message_templates_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_message_templates')),
    sa.UniqueConstraint('institution_id', 'kind', 'locale', name=op.f('uq_message_templates_institution_id_kind_locale'))
    )
    op.create_index(op.f('ix_message_templates_institution_id'), 'message_templates', ['institution_id'], unique=False)
    op.create_table('reminder_settings',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('morning_time', sa.String(length=5), nullable=True),
    sa.Column('minutes_before', sa.JSON(), nullable=False),
    sa.Column('channels', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_reminder_settings_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_reminder_settings')),
    sa.UniqueConstraint('institution_id', name=op.f('uq_reminder_settings_institution_id'))
    )
    op.create_index(op.f('ix_reminder_settings_institution_id'), 'reminder_settings', ['institution_id'], unique=False)
    op.create_table('lessons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('place', sa.String(length=200), nullable=True),
    sa.Column('online_url', sa.String(length=500), nullable=True),
    sa.Column('replay_url', sa.String(length=500), nullable=True),
    sa.Column('status', sa.Enum('scheduled', 'cancelled', name='lessonstatus', native_enum=False, length=16), nullable=False),
    sa.Column('schedule_version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_lessons_course_id_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_lessons_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lessons'))
    )
    op.create_index('ix_lessons_course_starts', 'lessons', ['course_id', 'starts_at'], unique=False)
    op.create_index(op.f('ix_lessons_institution_id'), 'lessons', ['institution_id'], unique=False)
    op.create_table('portal_sign_in_links',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_portal_sign_in_links_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_portal_sign_in_links_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_portal_sign_in_links')),
    sa.UniqueConstraint('code_hash', name=op.f('uq_portal_sign_in_links_code_hash'))
    )
    op.create_index(op.f('ix_portal_sign_in_links_contact_id'), 'portal_sign_in_links', ['contact_id'], unique=False)
    op.create_index(op.f('ix_portal_sign_in_links_institution_id'), 'portal_sign_in_links', ['institution_id'], unique=False)
    op.create_table('enrolments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.Enum('form', 'campaign', 'staff', name='enrolmentsource', native_enum=False, length=16), nullable=False),
    sa.Column('status', sa.Enum('active', 'completed', 'cancelled', name='enrolmentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_enrolments_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_enrolments_course_id_courses'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_enrolments_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_enrolments_student_id_students'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_enrolments')),
    sa.UniqueConstraint('course_id', 'student_id', name=op.f('uq_enrolments_course_id_student_id')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_enrolments_institution_id_code'))
    )
    op.create_index(op.f('ix_enrolments_contact_id'), 'enrolments', ['contact_id'], unique=False)
    op.create_index(op.f('ix_enrolments_institution_id'), 'enrolments', ['institution_id'], unique=False)
    op.create_table('seats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lesson_id', sa.Integer(), nullable=False),
    sa.Column('enrolment_id', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('booked', 'waitlisted', 'cancelled', name='seatstatus', native_enum=False, length=16), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attendance', sa.Enum('present', 'late', 'absent', name='attendance', native_enum=False, length=16), nullable=True),
    sa.Column('attendance_marked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attendance_marked_by_id', sa.Integer(), nullable=True),
    sa.Column('cancelled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['attendance_marked_by_id'], ['users.id'], name=op.f('fk_seats_attendance_marked_by_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name=op.f('fk_seats_enrolment_id_enrolments'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_seats_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lesson_id'], ['lessons.id'], name=op.f('fk_seats_lesson_id_lessons'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_seats')),
    sa.UniqueConstraint('lesson_id', 'enrolment_id', name=op.f('uq_seats_lesson_id_enrolment_id'))
    )
    op.create_index(op.f('ix_seats_enrolment_id'), 'seats', ['enrolment_id'], unique=False)
    op.create_index(op.f('ix_seats_institution_id'), 'seats', ['institution_id'], unique=False)
    op.create_index('ix_seats_lesson_status', 'seats', ['lesson_id', 'status'], unique=False)
    op.add_column('contacts', sa.Column('locale', sa.String(length=8), nullable=True))
    # Batch mode: SQLite (development) adds a foreign key only by rebuilding the table.
    with op.batch_alter_table('outbox_messages') as batch:
        batch.add_column(sa.Column('contact_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('topic', sa.String(length=64), nullable=True))
        batch.add_column(sa.Column('subject', sa.String(length=200), nullable=True))
        batch.add_column(sa.Column('body', sa.Text(), nullable=True))
        batch.create_index(batch.f('ix_outbox_messages_contact_id'), ['contact_id'], unique=False)
        batch.create_index('ix_outbox_messages_topic', ['institution_id', 'topic'], unique=False)
        batch.create_foreign_key(batch.f('fk_outbox_messages_contact_id_contacts'), 'contacts', ['contact_id'], ['id'], ondelete='CASCADE')

def downgrade() -> None:
    with op.batch_alter_table('outbox_messages') as batch:
        batch.drop_constraint(batch.f('fk_outbox_messages_contact_id_contacts'), type_='foreignkey')
        batch.drop_index('ix_outbox_messages_topic')
        batch.drop_index(batch.f('ix_outbox_messages_contact_id'))
        batch.drop_column('body')
        batch.drop_column('subject')
        batch.drop_column('topic')
        batch.drop_column('contact_id')
    op.drop_column('contacts', 'locale')
    op.drop_index('ix_seats_lesson_status', table_name='seats')
    op.drop_index(op.f('ix_seats_institution_id'), table_name='seats')
    op.drop_index(op.f('ix_seats_enrolment_id'), table_name='seats')
    op.drop_table('seats')
    op.drop_index(op.f('ix_enrolments_institution_id'), table_name='enrolments')
    op.drop_index(op.f('ix_enrolments_contact_id'), table_name='enrolments')
    op.drop_table('enrolments')
    op.drop_index(op.f('ix_portal_sign_in_links_institution_id'), table_name='portal_sign_in_links')
    op.drop_index(op.f('ix_portal_sign_in_links_contact_id'), table_name='portal_sign_in_links')
    op.drop_table('portal_sign_in_links')
    op.drop_index(op.f('ix_lessons_institution_id'), table_name='lessons')
    op.drop_index('ix_lessons_course_starts', table_name='lessons')
    op.drop_table('lessons')
    op.drop_index(op.f('ix_reminder_settings_institution_id'), table_name='reminder_settings')
    op.drop_table('reminder_settings')
    op.drop_index(op.f('ix_message_templates_institution_id'), table_name='message_templates')
    op.drop_table('message_templates')
    op.drop_index(op.f('ix_courses_teacher_id'), table_name='courses')
    op.drop_index(op.f('ix_courses_institution_id'), table_name='courses')
    op.drop_table('courses')
