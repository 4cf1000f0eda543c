"""VIP memberships: tiers staff define, and the time each family holds one.

A membership runs from `starts_at` to `ends_at`; renewing adds a membership that starts
when the current one ends. An active membership opens the institution's VIP club groups;
a scheduled job tells the family 3 days before the end and removes it from VIP groups on
the day, each once (`warned_at`, `lapsed_at`).

Days are the institution's: a membership ends at the institution's midnight after its
days have run out (`membership_end`), so the family keeps it for the whole of its last
day and loses it at the start of the next, which is "the day" it lapses; the reminder
goes out at WARN_TIME, WARN_DAYS days before that day (never at midnight).
"""

from __future__ import annotations

import enum
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.contacts.models import Contact
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow

WARN_DAYS = 3  # the family is told this many days before its membership ends
WARN_TIME = time(10, 0)  # in the morning of that day, on the institution's clock
MAX_DAYS = 3660  # a tier or a grant lasts at most ten years


def membership_end(starts_at: datetime, days: int, zone: ZoneInfo) -> datetime:
    """The end of a membership of `days` days from `starts_at`: the institution's midnight
    at or after the moment the days run out. Added on the wall clock, so a renewal that
    starts at midnight ends at midnight, whatever daylight saving did in between."""
    run_out = starts_at.astimezone(zone) + timedelta(days=days)
    end = datetime.combine(run_out.date(), time.min, tzinfo=zone)
    if end < run_out:
        end = datetime.combine(run_out.date() + timedelta(days=1), time.min, tzinfo=zone)
    return end.astimezone(UTC)


def last_day_of(ends_at: datetime, zone: ZoneInfo) -> date:
    """The institution's last day of a membership (or VIP time) ending at `ends_at`."""
    return (ends_at.astimezone(zone) - timedelta(microseconds=1)).date()


def warn_at(ends_at: datetime, zone: ZoneInfo) -> datetime:
    """When the family is told that its membership ends: WARN_TIME, WARN_DAYS days before
    the day it lapses on."""
    day = ends_at.astimezone(zone).date() - timedelta(days=WARN_DAYS)
    return datetime.combine(day, WARN_TIME, tzinfo=zone).astimezone(UTC)


class VipTier(TenantScoped, Base):
    """A VIP level staff define: free (granted) or paid, for a number of days."""

    __tablename__ = "vip_tiers"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="vip_price_not_negative"),
        CheckConstraint("duration_days > 0", name="vip_duration_positive"),
        UniqueConstraint("institution_id", "create_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    price_amount: Mapped[int] = mapped_column(default=0)  # minor units, institution currency
    duration_days: Mapped[int] = mapped_column(default=365)
    perks: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The one-time key of the form that created it: a double click on Save makes one tier.
    create_key: Mapped[str | None] = mapped_column(String(64))

    @property
    def is_free(self) -> bool:
        """Free tiers are only granted by staff; paid ones are bought on the family page."""
        return self.price_amount == 0


class MembershipSource(enum.StrEnum):
    PAID = "paid"
    GRANTED = "granted"


class VipMembership(TenantScoped, Base):
    """A family's VIP time. A paid one is written when its payment succeeds (one per
    payment); a granted one once per grant form (`grant_key`, the form's one-time key).
    `warned_at` and `lapsed_at` mark the reminder 3 days before the end and the removal
    from VIP groups on the day, each done once. A membership that another one continues
    (a renewal) is never warned about, and its end is marked `lapsed_at` with nobody
    removed."""

    __tablename__ = "vip_memberships"
    __table_args__ = (
        UniqueConstraint("institution_id", "payment_id"),
        UniqueConstraint("institution_id", "grant_key"),
        CheckConstraint("ends_at > starts_at", name="vip_membership_in_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tier_id: Mapped[int] = parent_id("vip_tiers", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    source: Mapped[MembershipSource] = mapped_column(str_enum(MembershipSource))
    payment_id: Mapped[int | None] = parent_id("payments")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    grant_key: Mapped[str | None] = mapped_column(String(64))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    warned_at: Mapped[datetime | None]
    lapsed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tier: Mapped[VipTier] = relationship(foreign_keys=[tier_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at

    def last_day(self, zone: ZoneInfo) -> date:
        """The institution's last day the family holds it (it ends at that day's end)."""
        return last_day_of(self.ends_at, zone)

    def warn_at(self, zone: ZoneInfo) -> datetime:
        return warn_at(self.ends_at, zone)


class VipPurchase(TenantScoped, Base):
    """What a family's VIP payment buys, written with the payment when the family presses
    Pay: the tier, its days and its price as the page showed them. The membership is
    written from it when the money is taken, which can be minutes later (a 3-D Secure
    step, the Payment Element), by which time staff may have changed the tier."""

    __tablename__ = "vip_purchases"
    __table_args__ = (
        UniqueConstraint("institution_id", "payment_id"),
        CheckConstraint("duration_days > 0", name="vip_purchase_duration_positive"),
        CheckConstraint("price_amount > 0", name="vip_purchase_price_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = parent_id("payments", ondelete="CASCADE")
    tier_id: Mapped[int] = parent_id("vip_tiers", index=True)
    duration_days: Mapped[int]
    price_amount: Mapped[int]  # minor units, the payment's currency
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


SOURCE_LABELS = {
    MembershipSource.PAID: _l("Paid"),
    MembershipSource.GRANTED: _l("Granted by staff"),
}
