"""The staff dashboard's indexes: each of its aggregates reads one institution's rows in
a range of time (new contacts and leads per day, enrolments by the day their lead was
closed, the lead events of the funnel, revenue by capture and refund, trial places by booking and lesson day, teams
about to expire, active group members per day). Every index starts with
`institution_id`, so an aggregate never walks another institution's rows. They are
declared in app/dashboard/models.py, beside the reason for each.

Revision ID: 3c1f0a9d2b7e
Revises: e7d7355efdaa
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op


revision: str = "3c1f0a9d2b7e"
down_revision: str | None = "e7d7355efdaa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEXES = (
    ("ix_contacts_institution_created", "contacts", ["institution_id", "created_at"]),
    (
        "ix_contact_events_institution_kind_created",
        "contact_events",
        ["institution_id", "kind", "created_at"],
    ),
    ("ix_leads_institution_created", "leads", ["institution_id", "created_at"]),
    ("ix_leads_institution_stage_closed", "leads", ["institution_id", "stage", "closed_at"]),
    ("ix_payments_institution_captured", "payments", ["institution_id", "captured_at"]),
    ("ix_payments_institution_status", "payments", ["institution_id", "status"]),
    (
        "ix_payment_transitions_institution_to",
        "payment_transitions",
        ["institution_id", "to_status", "created_at"],
    ),
    ("ix_seats_institution_created", "seats", ["institution_id", "created_at"]),
    ("ix_lessons_institution_starts", "lessons", ["institution_id", "starts_at"]),
    ("ix_teams_institution_status_expires", "teams", ["institution_id", "status", "expires_at"]),
    ("ix_member_activity_institution_day", "member_activity", ["institution_id", "day"]),
)


def upgrade() -> None:
    for name, table, columns in INDEXES:
        op.create_index(name, table, columns, unique=False)


def downgrade() -> None:
    for name, table, _columns in reversed(INDEXES):
        op.drop_index(name, table_name=table)
