"""PostgreSQL enforces tenancy: row-level security on every tenant table

Every tenant table gets ROW LEVEL SECURITY, ENABLEd and FORCEd (so even its owner is held
to it unless the role has BYPASSRLS), with one policy: a row is visible and writable when
its institution_id is the one the transaction names in `app.institution_id` (Cohort sets
it with set_config(..., true), i.e. SET LOCAL, at the start of every transaction: app.db).
With nothing named, nothing is visible. Two exceptions, written out below: a user sees
their own memberships of every institution (`app.user_id`, for the institution
switcher), and platform messages of the outbox (no institution: a password reset) are
visible only when no institution is named.

The application connects as a role without BYPASSRLS; the sweepers that look across
institutions, and migrations, use a role with it (README, "Database roles").
On SQLite (development) this revision does nothing.

Revision ID: e7f8a9b0c1d2
Revises: d5e6f7a8b9c0
Create Date: 2026-12-01 02:00:00
"""

from collections.abc import Sequence

from alembic import op


revision: str = 'e7f8a9b0c1d2'
down_revision: str | None = 'd5e6f7a8b9c0'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TENANT_TABLES = [
    'contact_events', 'contact_tags', 'contact_touches', 'contacts', 'courses', 'enrolments',
    'form_source_stats', 'form_submissions', 'group_buys', 'invitations', 'lead_assignees',
    'lead_forms', 'leads', 'lessons', 'lost_reasons', 'memberships', 'message_templates',
    'payment_transitions', 'payments', 'portal_sign_in_links', 'reminder_settings', 'seats',
    'stripe_accounts', 'stripe_events', 'students', 'tags', 'team_members', 'teams',
    'outbox_messages',
]
TENANT = "institution_id = cohort_institution()"
POLICIES = {
    'memberships': (f"{TENANT} OR user_id = cohort_user()", TENANT),
    'outbox_messages': (
        f"{TENANT} OR (institution_id IS NULL AND cohort_institution() IS NULL)",
        f"{TENANT} OR (institution_id IS NULL AND cohort_institution() IS NULL)",
    ),
}


def upgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    op.execute(
        "CREATE FUNCTION cohort_institution() RETURNS bigint LANGUAGE sql STABLE AS "
        "$$ SELECT nullif(current_setting('app.institution_id', true), '')::bigint $$"
    )
    op.execute(
        "CREATE FUNCTION cohort_user() RETURNS bigint LANGUAGE sql STABLE AS "
        "$$ SELECT nullif(current_setting('app.user_id', true), '')::bigint $$"
    )
    for table in TENANT_TABLES:
        using, check = POLICIES.get(table, (TENANT, TENANT))
        op.execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
        op.execute(
            f"CREATE POLICY tenant_isolation ON {table} USING ({using}) WITH CHECK ({check})"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name != 'postgresql':
        return
    for table in TENANT_TABLES:
        op.execute(f"DROP POLICY tenant_isolation ON {table}")
        op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    op.execute("DROP FUNCTION cohort_user()")
    op.execute("DROP FUNCTION cohort_institution()")
