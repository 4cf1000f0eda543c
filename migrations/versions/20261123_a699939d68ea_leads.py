"""leads: forms, submissions, pipeline, lost reasons, round-robin

Revision ID: a699939d68ea
Revises: 5fe107a5a6f4
Create Date: 2026-11-23 10:55:18.652484
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = 'a699939d68ea'
down_revision: str | None = '5fe107a5a6f4'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('lead_assignees',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('last_assigned_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_lead_assignees_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_lead_assignees_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_assignees')),
    sa.UniqueConstraint('institution_id', 'user_id', name=op.f('uq_lead_assignees_institution_id_user_id'))
    )
    op.create_index(op.f('ix_lead_assignees_institution_id'), 'lead_assignees', ['institution_id'], unique=False)
    op.create_table('lead_forms',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('intro', sa.Text(), nullable=True),
    sa.Column('fields', sa.JSON(), nullable=False),
    sa.Column('consent_text', sa.Text(), nullable=True),
    sa.Column('thank_you_message', sa.Text(), nullable=True),
    sa.Column('redirect_url', sa.String(length=500), nullable=True),
    sa.Column('is_open', sa.Boolean(), nullable=False),
    sa.Column('closes_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('submission_cap', sa.Integer(), nullable=True),
    sa.Column('view_count', sa.Integer(), nullable=False),
    sa.Column('submission_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_lead_forms_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lead_forms')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_lead_forms_institution_id_code'))
    )
    op.create_index(op.f('ix_lead_forms_institution_id'), 'lead_forms', ['institution_id'], unique=False)
    op.create_table('lost_reasons',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=80), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_lost_reasons_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_lost_reasons')),
    sa.UniqueConstraint('institution_id', 'name', name=op.f('uq_lost_reasons_institution_id_name'))
    )
    op.create_index(op.f('ix_lost_reasons_institution_id'), 'lost_reasons', ['institution_id'], unique=False)
    op.create_table('form_source_stats',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('views', sa.Integer(), nullable=False),
    sa.Column('submissions', sa.Integer(), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['form_id'], ['lead_forms.id'], name=op.f('fk_form_source_stats_form_id_lead_forms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_form_source_stats_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_source_stats')),
    sa.UniqueConstraint('form_id', 'source', name=op.f('uq_form_source_stats_form_id_source'))
    )
    op.create_index(op.f('ix_form_source_stats_form_id'), 'form_source_stats', ['form_id'], unique=False)
    op.create_index(op.f('ix_form_source_stats_institution_id'), 'form_source_stats', ['institution_id'], unique=False)
    op.create_table('leads',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('stage', sa.Enum('new', 'contacted', 'trial_booked', 'trial_attended', 'enrolled', 'lost', name='stage', native_enum=False, length=16), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=True),
    sa.Column('form_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('lost_reason', sa.String(length=80), nullable=True),
    sa.Column('next_contact_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_leads_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['form_id'], ['lead_forms.id'], name=op.f('fk_leads_form_id_lead_forms'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_leads_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_leads_owner_id_users'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_leads'))
    )
    op.create_index(op.f('ix_leads_contact_id'), 'leads', ['contact_id'], unique=False)
    op.create_index(op.f('ix_leads_created_at'), 'leads', ['created_at'], unique=False)
    op.create_index(op.f('ix_leads_form_id'), 'leads', ['form_id'], unique=False)
    op.create_index(op.f('ix_leads_institution_id'), 'leads', ['institution_id'], unique=False)
    op.create_index('ix_leads_pipeline', 'leads', ['institution_id', 'stage', 'owner_id'], unique=False)
    op.create_index('uq_leads_open_per_contact', 'leads', ['institution_id', 'contact_id'], unique=True, postgresql_where=sa.text("stage NOT IN ('enrolled', 'lost')"), sqlite_where=sa.text("stage NOT IN ('enrolled', 'lost')"))
    op.create_table('form_submissions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('form_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('lead_id', sa.Integer(), nullable=True),
    sa.Column('phone', sa.String(length=20), nullable=False),
    sa.Column('answers', sa.JSON(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('referral_code', sa.String(length=64), nullable=True),
    sa.Column('referrer', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_form_submissions_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['form_id'], ['lead_forms.id'], name=op.f('fk_form_submissions_form_id_lead_forms'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_form_submissions_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['lead_id'], ['leads.id'], name=op.f('fk_form_submissions_lead_id_leads'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_form_submissions'))
    )
    op.create_index(op.f('ix_form_submissions_contact_id'), 'form_submissions', ['contact_id'], unique=False)
    op.create_index(op.f('ix_form_submissions_form_id'), 'form_submissions', ['form_id'], unique=False)
    op.create_index('ix_form_submissions_form_phone', 'form_submissions', ['form_id', 'phone', 'created_at'], unique=False)
    op.create_index(op.f('ix_form_submissions_institution_id'), 'form_submissions', ['institution_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_form_submissions_institution_id'), table_name='form_submissions')
    op.drop_index('ix_form_submissions_form_phone', table_name='form_submissions')
    op.drop_index(op.f('ix_form_submissions_form_id'), table_name='form_submissions')
    op.drop_index(op.f('ix_form_submissions_contact_id'), table_name='form_submissions')
    op.drop_table('form_submissions')
    op.drop_index('uq_leads_open_per_contact', table_name='leads', postgresql_where=sa.text("stage NOT IN ('enrolled', 'lost')"), sqlite_where=sa.text("stage NOT IN ('enrolled', 'lost')"))
    op.drop_index('ix_leads_pipeline', table_name='leads')
    op.drop_index(op.f('ix_leads_institution_id'), table_name='leads')
    op.drop_index(op.f('ix_leads_form_id'), table_name='leads')
    op.drop_index(op.f('ix_leads_created_at'), table_name='leads')
    op.drop_index(op.f('ix_leads_contact_id'), table_name='leads')
    op.drop_table('leads')
    op.drop_index(op.f('ix_form_source_stats_institution_id'), table_name='form_source_stats')
    op.drop_index(op.f('ix_form_source_stats_form_id'), table_name='form_source_stats')
    op.drop_table('form_source_stats')
    op.drop_index(op.f('ix_lost_reasons_institution_id'), table_name='lost_reasons')
    op.drop_table('lost_reasons')
    op.drop_index(op.f('ix_lead_forms_institution_id'), table_name='lead_forms')
    op.drop_table('lead_forms')
    op.drop_index(op.f('ix_lead_assignees_institution_id'), table_name='lead_assignees')
    op.drop_table('lead_assignees')
