"""contacts: families, students, touches, timeline, tags

Revision ID: 5fe107a5a6f4
Revises: 9b7d058065ef
Create Date: 2026-11-23 10:46:29.459673
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '5fe107a5a6f4'
down_revision: str | None = '9b7d058065ef'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('contacts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('parent_name', sa.String(length=80), nullable=False),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=True),
    sa.Column('wechat_id', sa.String(length=64), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('consent_text', sa.Text(), nullable=True),
    sa.Column('consent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('referral_code', sa.String(length=16), nullable=False),
    sa.Column('staff_edited', sa.JSON(), nullable=False),
    sa.Column('first_touch_id', sa.Integer(), nullable=True),
    sa.Column('latest_touch_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_contacts_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_contacts_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contacts')),
    sa.UniqueConstraint('institution_id', 'phone', name=op.f('uq_contacts_institution_id_phone')),
    sa.UniqueConstraint('institution_id', 'referral_code', name=op.f('uq_contacts_institution_id_referral_code'))
    )
    op.create_index(op.f('ix_contacts_institution_id'), 'contacts', ['institution_id'], unique=False)
    op.create_index(op.f('ix_contacts_owner_id'), 'contacts', ['owner_id'], unique=False)
    op.create_table('tags',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=40), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_tags_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tags')),
    sa.UniqueConstraint('institution_id', 'name', name=op.f('uq_tags_institution_id_name'))
    )
    op.create_index(op.f('ix_tags_institution_id'), 'tags', ['institution_id'], unique=False)
    op.create_table('contact_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('created', 'touch', 'updated', 'merged', 'note', 'lead', name='eventkind', native_enum=False, length=16), nullable=False),
    sa.Column('data', sa.JSON(), nullable=False),
    sa.Column('actor_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['actor_id'], ['users.id'], name=op.f('fk_contact_events_actor_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_events_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_contact_events_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_events'))
    )
    op.create_index(op.f('ix_contact_events_contact_id'), 'contact_events', ['contact_id'], unique=False)
    op.create_index(op.f('ix_contact_events_created_at'), 'contact_events', ['created_at'], unique=False)
    op.create_index(op.f('ix_contact_events_institution_id'), 'contact_events', ['institution_id'], unique=False)
    op.create_table('contact_tags',
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('tag_id', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_tags_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_contact_tags_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['tag_id'], ['tags.id'], name=op.f('fk_contact_tags_tag_id_tags'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('contact_id', 'tag_id', name=op.f('pk_contact_tags'))
    )
    op.create_index(op.f('ix_contact_tags_institution_id'), 'contact_tags', ['institution_id'], unique=False)
    op.create_table('contact_touches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.Enum('form', 'campaign', 'course', 'referral', 'import', 'staff', name='sourcekind', native_enum=False, length=16), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=True),
    sa.Column('referral_code', sa.String(length=64), nullable=True),
    sa.Column('utm_source', sa.String(length=100), nullable=True),
    sa.Column('utm_medium', sa.String(length=100), nullable=True),
    sa.Column('utm_campaign', sa.String(length=100), nullable=True),
    sa.Column('referrer', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_contact_touches_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_contact_touches_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_contact_touches'))
    )
    op.create_index(op.f('ix_contact_touches_contact_id'), 'contact_touches', ['contact_id'], unique=False)
    op.create_index(op.f('ix_contact_touches_institution_id'), 'contact_touches', ['institution_id'], unique=False)
    op.create_index('ix_contact_touches_source', 'contact_touches', ['institution_id', 'kind', 'ref'], unique=False)
    # contacts and contact_touches point at each other: the contacts side is added last.
    # (batch mode, so that SQLite, which cannot ALTER constraints, rebuilds the table)
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.create_foreign_key(op.f('fk_contacts_first_touch_id_contact_touches'), 'contact_touches', ['first_touch_id'], ['id'], ondelete='SET NULL')
        batch_op.create_foreign_key(op.f('fk_contacts_latest_touch_id_contact_touches'), 'contact_touches', ['latest_touch_id'], ['id'], ondelete='SET NULL')
    op.create_table('students',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('grade', sa.String(length=40), nullable=True),
    sa.Column('birth_year', sa.Integer(), nullable=True),
    sa.Column('school', sa.String(length=120), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_students_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_students_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_students'))
    )
    op.create_index(op.f('ix_students_contact_id'), 'students', ['contact_id'], unique=False)
    op.create_index(op.f('ix_students_institution_id'), 'students', ['institution_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('contacts') as batch_op:
        batch_op.drop_constraint(op.f('fk_contacts_latest_touch_id_contact_touches'), type_='foreignkey')
        batch_op.drop_constraint(op.f('fk_contacts_first_touch_id_contact_touches'), type_='foreignkey')
    op.drop_index(op.f('ix_students_institution_id'), table_name='students')
    op.drop_index(op.f('ix_students_contact_id'), table_name='students')
    op.drop_table('students')
    op.drop_index('ix_contact_touches_source', table_name='contact_touches')
    op.drop_index(op.f('ix_contact_touches_institution_id'), table_name='contact_touches')
    op.drop_index(op.f('ix_contact_touches_contact_id'), table_name='contact_touches')
    op.drop_table('contact_touches')
    op.drop_index(op.f('ix_contact_tags_institution_id'), table_name='contact_tags')
    op.drop_table('contact_tags')
    op.drop_index(op.f('ix_contact_events_institution_id'), table_name='contact_events')
    op.drop_index(op.f('ix_contact_events_created_at'), table_name='contact_events')
    op.drop_index(op.f('ix_contact_events_contact_id'), table_name='contact_events')
    op.drop_table('contact_events')
    op.drop_index(op.f('ix_tags_institution_id'), table_name='tags')
    op.drop_table('tags')
    op.drop_index(op.f('ix_contacts_owner_id'), table_name='contacts')
    op.drop_index(op.f('ix_contacts_institution_id'), table_name='contacts')
    op.drop_table('contacts')
