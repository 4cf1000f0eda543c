"""Loyalty: points and rewards, and referrals.

Points are a ledger: a family's balance is the sum of its entries, which are only ever
added (a PostgreSQL trigger refuses UPDATE and DELETE). Every entry has a `source_key`,
unique per institution, so the event that earned it (a check-in, a streak milestone, a
referral) is credited once however often its job runs. A redemption adds a negative
entry and takes one unit of the reward's stock, in one transaction: the family's row is
locked first (so two redemptions by one family cannot both spend the same points) and the
stock is claimed last, by a conditional UPDATE (the hot row, held for milliseconds).

Referrals record who brought whom, once per referred
family and event.
"""

from __future__ import annotations

import enum
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.contacts.models import Contact
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow

STREAK_MILESTONES = (7, 21, 30)


class PointsRules(TenantScoped, Base):
    """An institution's points rules; one row, created with the defaults when first
    needed."""

    __tablename__ = "points_rules"
    __table_args__ = (UniqueConstraint("institution_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    per_checkin: Mapped[int] = mapped_column(default=10)
    streak_7: Mapped[int] = mapped_column(default=50)
    streak_21: Mapped[int] = mapped_column(default=150)
    streak_30: Mapped[int] = mapped_column(default=300)
    per_referral: Mapped[int] = mapped_column(default=100)

    def streak_bonus(self, days: int) -> int:
        return getattr(self, f"streak_{days}", 0)


class PointsReason(enum.StrEnum):
    CHECKIN = "checkin"
    STREAK = "streak"
    REFERRAL = "referral"
    MANUAL = "manual"
    REDEMPTION = "redemption"
    REFUND = "refund"  # a cancelled redemption gives its points back

    @property
    def label(self):
        return POINTS_REASON_LABELS[self]


POINTS_REASON_LABELS = {
    PointsReason.CHECKIN: _l("Check-in"),
    PointsReason.STREAK: _l("Streak bonus"),
    PointsReason.REFERRAL: _l("Referral"),
    PointsReason.MANUAL: _l("Given by staff"),
    PointsReason.REDEMPTION: _l("Reward redeemed"),
    PointsReason.REFUND: _l("Redemption cancelled"),
}


class PointsEntry(TenantScoped, Base):
    """One line of a family's points ledger: never changed, never deleted."""

    __tablename__ = "points_entries"
    __table_args__ = (
        UniqueConstraint("institution_id", "source_key"),
        CheckConstraint("amount <> 0", name="points_entry_not_zero"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    amount: Mapped[int]
    reason: Mapped[PointsReason] = mapped_column(str_enum(PointsReason))
    note: Mapped[str | None] = mapped_column(String(200))
    source_key: Mapped[str] = mapped_column(String(80))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RewardKind(enum.StrEnum):
    FREE_LESSON = "free_lesson"
    MATERIALS = "materials"
    DISCOUNT = "discount"
    OTHER = "other"

    @property
    def label(self):
        return REWARD_KIND_LABELS[self]


REWARD_KIND_LABELS = {
    RewardKind.FREE_LESSON: _l("Free trial lesson"),
    RewardKind.MATERIALS: _l("Material pack"),
    RewardKind.DISCOUNT: _l("Discount on the next course"),
    RewardKind.OTHER: _l("Other"),
}


class Reward(TenantScoped, Base):
    """Something a family can redeem points for. `stock` moves only by a conditional
    UPDATE (never below zero)."""

    __tablename__ = "rewards"
    __table_args__ = (
        CheckConstraint("stock >= 0", name="reward_stock_not_negative"),
        CheckConstraint("points_price > 0", name="reward_price_positive"),
        UniqueConstraint("institution_id", "create_key"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    kind: Mapped[RewardKind] = mapped_column(str_enum(RewardKind), default=RewardKind.OTHER)
    points_price: Mapped[int]
    stock: Mapped[int] = mapped_column(default=0)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The one-time key of the form that created it: a double click on Save makes one.
    create_key: Mapped[str | None] = mapped_column(String(64))


class RedemptionStatus(enum.StrEnum):
    REQUESTED = "requested"
    FULFILLED = "fulfilled"
    CANCELLED = "cancelled"

    @property
    def label(self):
        return REDEMPTION_STATUS_LABELS[self]


REDEMPTION_STATUS_LABELS = {
    RedemptionStatus.REQUESTED: _l("To hand over"),
    RedemptionStatus.FULFILLED: _l("Handed over"),
    RedemptionStatus.CANCELLED: _l("Cancelled"),
}


class Redemption(TenantScoped, Base):
    """A family spent `points` on one unit of a reward; staff hand it over (fulfilled) or
    cancel it (the points and the unit go back). Only a requested one can change."""

    __tablename__ = "redemptions"

    id: Mapped[int] = mapped_column(primary_key=True)
    reward_id: Mapped[int] = parent_id("rewards", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    points: Mapped[int]
    status: Mapped[RedemptionStatus] = mapped_column(
        str_enum(RedemptionStatus), default=RedemptionStatus.REQUESTED
    )
    fulfilled_at: Mapped[datetime | None]
    fulfilled_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    reward: Mapped[Reward] = relationship(foreign_keys=[reward_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])

    @property
    def is_requested(self) -> bool:
        """Still to hand over: the only state that can be fulfilled or cancelled."""
        return self.status == RedemptionStatus.REQUESTED


class ReferralEvent(enum.StrEnum):
    REGISTRATION = "registration"  # registered for a trial
    PAYMENT = "payment"  # paid for a course or membership
    TEAM_JOIN = "team_join"  # joined a group-buy team
    GROUP_JOIN = "group_join"  # joined a group


REFERRAL_EVENT_LABELS = {
    ReferralEvent.REGISTRATION: _l("Registered for a trial"),
    ReferralEvent.PAYMENT: _l("Paid"),
    ReferralEvent.TEAM_JOIN: _l("Joined a group-buy team"),
    ReferralEvent.GROUP_JOIN: _l("Joined a group"),
}


class Referral(TenantScoped, Base):
    """One family brought another to one event: credited once per referred family and
    event (the unique constraint), never to itself (the check)."""

    __tablename__ = "referrals"
    __table_args__ = (
        UniqueConstraint("institution_id", "referred_id", "event"),
        CheckConstraint("referrer_id <> referred_id", name="referral_not_self"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    referred_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE")
    event: Mapped[ReferralEvent] = mapped_column(str_enum(ReferralEvent))
    # What the referred family came through: "form:<code>", "course:<id>", "campaign:<code>",
    # "group:<code>", for the per-campaign view.
    source: Mapped[str | None] = mapped_column(String(64))
    points: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    referrer: Mapped[Contact] = relationship(foreign_keys=[referrer_id])
    referred: Mapped[Contact] = relationship(foreign_keys=[referred_id])
