"""Payments, Stripe accounts and webhook events; group buys, teams and members

Revision ID: 6db0f5a888ff
Revises: 036eb5100c09
Create Date: 2026-11-23 13:22:48.803443
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '6db0f5a888ff'
down_revision: str | None = '036eb5100c09'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('stripe_accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('publishable_key', sa.String(length=255), nullable=True),
    sa.Column('secret_key', sa.String(length=255), nullable=True),
    sa.Column('connected_account_id', sa.String(length=255), nullable=True),
    sa.Column('webhook_secret', sa.String(length=255), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_stripe_accounts_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_accounts')),
    sa.UniqueConstraint('institution_id', name=op.f('uq_stripe_accounts_institution_id'))
    )
    op.create_index(op.f('ix_stripe_accounts_institution_id'), 'stripe_accounts', ['institution_id'], unique=False)
    op.create_table('stripe_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=255), nullable=False),
    sa.Column('type', sa.String(length=100), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('processed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_stripe_events_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_stripe_events')),
    sa.UniqueConstraint('institution_id', 'event_id', name=op.f('uq_stripe_events_institution_id_event_id'))
    )
    op.create_index(op.f('ix_stripe_events_institution_id'), 'stripe_events', ['institution_id'], unique=False)
    op.create_table('group_buys',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('cover', sa.LargeBinary(), nullable=True),
    sa.Column('cover_content_type', sa.String(length=32), nullable=True),
    sa.Column('cover_updated_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('course_id', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('list_price_amount', sa.Integer(), nullable=False),
    sa.Column('group_price_amount', sa.Integer(), nullable=False),
    sa.Column('leader_price_amount', sa.Integer(), nullable=True),
    sa.Column('team_size', sa.Integer(), nullable=False),
    sa.Column('team_hours', sa.Integer(), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('team_limit', sa.Integer(), nullable=True),
    sa.Column('per_contact_limit', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('draft', 'published', 'ended', name='campaignstatus', native_enum=False, length=16), nullable=False),
    sa.Column('published_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['course_id'], ['courses.id'], name=op.f('fk_group_buys_course_id_courses'), ondelete='RESTRICT'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_group_buys_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_group_buys')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_group_buys_institution_id_code'))
    )
    op.create_index(op.f('ix_group_buys_course_id'), 'group_buys', ['course_id'], unique=False)
    op.create_index(op.f('ix_group_buys_institution_id'), 'group_buys', ['institution_id'], unique=False)
    op.create_table('payments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=32), nullable=False),
    sa.Column('reference', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=True),
    sa.Column('amount', sa.Integer(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('is_manual_capture', sa.Boolean(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'authorised', 'captured', 'released', 'refunded', 'failed', name='paymentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('intent_id', sa.String(length=255), nullable=True),
    sa.Column('failure_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('authorised_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('captured_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('released_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_payments_contact_id_contacts'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_payments_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payments')),
    sa.UniqueConstraint('institution_id', 'intent_id', name=op.f('uq_payments_institution_id_intent_id'))
    )
    op.create_index(op.f('ix_payments_contact_id'), 'payments', ['contact_id'], unique=False)
    op.create_index(op.f('ix_payments_institution_id'), 'payments', ['institution_id'], unique=False)
    op.create_index('ix_payments_status', 'payments', ['status'], unique=False)
    op.create_table('payment_transitions',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=False),
    sa.Column('from_status', sa.Enum('pending', 'authorised', 'captured', 'released', 'refunded', 'failed', name='paymentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('to_status', sa.Enum('pending', 'authorised', 'captured', 'released', 'refunded', 'failed', name='paymentstatus', native_enum=False, length=16), nullable=False),
    sa.Column('cause', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_payment_transitions_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_payment_transitions_payment_id_payments'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_payment_transitions'))
    )
    op.create_index(op.f('ix_payment_transitions_institution_id'), 'payment_transitions', ['institution_id'], unique=False)
    op.create_index(op.f('ix_payment_transitions_payment_id'), 'payment_transitions', ['payment_id'], unique=False)
    op.create_table('teams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('group_buy_id', sa.Integer(), nullable=False),
    sa.Column('team_size', sa.Integer(), nullable=False),
    sa.Column('member_count', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('forming', 'succeeded', 'failed', name='teamstatus', native_enum=False, length=16), nullable=False),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('succeeded_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['group_buy_id'], ['group_buys.id'], name=op.f('fk_teams_group_buy_id_group_buys'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_teams_institution_id_institutions'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_teams')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_teams_institution_id_code'))
    )
    op.create_index(op.f('ix_teams_group_buy_id'), 'teams', ['group_buy_id'], unique=False)
    op.create_index(op.f('ix_teams_institution_id'), 'teams', ['institution_id'], unique=False)
    op.create_index('ix_teams_status_expires', 'teams', ['status', 'expires_at'], unique=False)
    op.create_table('team_members',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('team_id', sa.Integer(), nullable=False),
    sa.Column('contact_id', sa.Integer(), nullable=False),
    sa.Column('student_id', sa.Integer(), nullable=False),
    sa.Column('payment_id', sa.Integer(), nullable=True),
    sa.Column('enrolment_id', sa.Integer(), nullable=True),
    sa.Column('is_leader', sa.Boolean(), nullable=False),
    sa.Column('price_amount', sa.Integer(), nullable=False),
    sa.Column('status', sa.Enum('pending', 'authorised', 'captured', 'released', 'failed', name='memberstatus', native_enum=False, length=16), nullable=False),
    sa.Column('release_reason', sa.Enum('team_full', 'team_failed', 'staff', 'hold_expired', 'declined', 'capture_failed', 'abandoned', name='releasereason', native_enum=False, length=16), nullable=True),
    sa.Column('joined_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('institution_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['contact_id'], ['contacts.id'], name=op.f('fk_team_members_contact_id_contacts'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['enrolment_id'], ['enrolments.id'], name=op.f('fk_team_members_enrolment_id_enrolments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['institution_id'], ['institutions.id'], name=op.f('fk_team_members_institution_id_institutions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['payment_id'], ['payments.id'], name=op.f('fk_team_members_payment_id_payments'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['student_id'], ['students.id'], name=op.f('fk_team_members_student_id_students'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['team_id'], ['teams.id'], name=op.f('fk_team_members_team_id_teams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_team_members')),
    sa.UniqueConstraint('institution_id', 'code', name=op.f('uq_team_members_institution_id_code'))
    )
    op.create_index(op.f('ix_team_members_contact_id'), 'team_members', ['contact_id'], unique=False)
    op.create_index(op.f('ix_team_members_institution_id'), 'team_members', ['institution_id'], unique=False)
    op.create_index(op.f('ix_team_members_payment_id'), 'team_members', ['payment_id'], unique=False)
    op.create_index(op.f('ix_team_members_team_id'), 'team_members', ['team_id'], unique=False)
    op.create_index('uq_team_members_active_contact', 'team_members', ['team_id', 'contact_id'], unique=True, postgresql_where=sa.text("status IN ('pending', 'authorised', 'captured')"), sqlite_where=sa.text("status IN ('pending', 'authorised', 'captured')"))


def downgrade() -> None:
    op.drop_index('uq_team_members_active_contact', table_name='team_members', postgresql_where=sa.text("status IN ('pending', 'authorised', 'captured')"), sqlite_where=sa.text("status IN ('pending', 'authorised', 'captured')"))
    op.drop_index(op.f('ix_team_members_team_id'), table_name='team_members')
    op.drop_index(op.f('ix_team_members_payment_id'), table_name='team_members')
    op.drop_index(op.f('ix_team_members_institution_id'), table_name='team_members')
    op.drop_index(op.f('ix_team_members_contact_id'), table_name='team_members')
    op.drop_table('team_members')
    op.drop_index('ix_teams_status_expires', table_name='teams')
    op.drop_index(op.f('ix_teams_institution_id'), table_name='teams')
    op.drop_index(op.f('ix_teams_group_buy_id'), table_name='teams')
    op.drop_table('teams')
    op.drop_index(op.f('ix_payment_transitions_payment_id'), table_name='payment_transitions')
    op.drop_index(op.f('ix_payment_transitions_institution_id'), table_name='payment_transitions')
    op.drop_table('payment_transitions')
    op.drop_index('ix_payments_status', table_name='payments')
    op.drop_index(op.f('ix_payments_institution_id'), table_name='payments')
    op.drop_index(op.f('ix_payments_contact_id'), table_name='payments')
    op.drop_table('payments')
    op.drop_index(op.f('ix_group_buys_institution_id'), table_name='group_buys')
    op.drop_index(op.f('ix_group_buys_course_id'), table_name='group_buys')
    op.drop_table('group_buys')
    op.drop_index(op.f('ix_stripe_events_institution_id'), table_name='stripe_events')
    op.drop_table('stripe_events')
    op.drop_index(op.f('ix_stripe_accounts_institution_id'), table_name='stripe_accounts')
    op.drop_table('stripe_accounts')
