"""The dashboard keeps no rows of its own: every figure is an aggregate over the other
domains' tables, read when the page is asked for, so no job has to run first. (The funnel
reads the one rollup there is, contacts' FamilyProgress, which the contacts and leads
services keep in the statements that change a family's stage.) What it adds are the
indexes those aggregates need, declared here beside the reason for each (and created by
the migration 20261202_3c1f0a9d2b7e): every one starts with `institution_id`, so an
aggregate reads the rows of one institution only.

Periods are runs of the institution's local days; `Period.utc_bounds` turns one into the
UTC instants the indexed timestamp columns are compared with.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Index

from app.campaigns.models import Team
from app.contacts.models import Contact
from app.courses.models import Lesson, Seat
from app.groups.models import MemberActivity
from app.leads.models import Lead
from app.localtime import local_day_start
from app.payments.models import Payment, PaymentTransition

INDEXES = (
    # New contacts per day, and the funnel's cohort: the families first seen in a period.
    Index("ix_contacts_institution_created", Contact.institution_id, Contact.created_at),
    # New leads per day and today's.
    Index("ix_leads_institution_created", Lead.institution_id, Lead.created_at),
    # Enrolments per day: leads that reached `enrolled`, on the day they did.
    Index("ix_leads_institution_stage_closed", Lead.institution_id, Lead.stage, Lead.closed_at),
    # Revenue per day, and the payments waiting (pending checkouts and card holds).
    Index("ix_payments_institution_captured", Payment.institution_id, Payment.captured_at),
    Index("ix_payments_institution_status", Payment.institution_id, Payment.status),
    # Refunds per day, subtracted from the revenue on the day the money went back.
    Index(
        "ix_payment_transitions_institution_to",
        PaymentTransition.institution_id,
        PaymentTransition.to_status,
        PaymentTransition.created_at,
    ),
    # Trial places booked per day.
    Index("ix_seats_institution_created", Seat.institution_id, Seat.created_at),
    # Today's trial lessons, and attendance per lesson day.
    Index("ix_lessons_institution_starts", Lesson.institution_id, Lesson.starts_at),
    # Teams about to expire (the campaigns' own index starts with the status, across
    # institutions).
    Index("ix_teams_institution_status_expires", Team.institution_id, Team.status, Team.expires_at),
    # Daily, weekly and monthly active members of every group of an institution.
    Index("ix_member_activity_institution_day", MemberActivity.institution_id, MemberActivity.day),
)

PERIOD_DAYS = (7, 30, 90)
DEFAULT_DAYS = 30
MAX_DAYS = 366


@dataclass(frozen=True)
class Period:
    """The local days from `start` to `end`, both included."""

    start: date
    end: date

    @classmethod
    def last(cls, days: int, today: date) -> Period:
        return cls(today - timedelta(days=days - 1), today)

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The period of the same length just before this one (what it is compared with)."""
        return Period(self.start - timedelta(days=self.days), self.start - timedelta(days=1))

    def each_day(self) -> list[date]:
        return [self.start + timedelta(days=n) for n in range(self.days)]

    def utc_bounds(self, zone: ZoneInfo) -> tuple[datetime, datetime]:
        """[first local midnight, the midnight after the last day) as UTC instants."""
        return (
            local_day_start(self.start, zone).astimezone(UTC),
            local_day_start(self.end + timedelta(days=1), zone).astimezone(UTC),
        )

    def args(self) -> dict[str, str]:
        """The query-string arguments that name this period (for links and exports)."""
        return {"start": self.start.isoformat(), "end": self.end.isoformat()}
