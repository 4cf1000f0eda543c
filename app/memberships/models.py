"""VIP memberships: tiers staff define, and the time each family holds one.

A membership runs from `starts_at` to `ends_at`; renewing adds a membership that starts
when the current one ends. An active membership opens the institution's VIP club groups;
a scheduled job tells the family 3 days before the end and removes it from VIP groups on
the day, each once (`warned_at`, `lapsed_at`).
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.contacts.models import Contact
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow


class VipTier(TenantScoped, Base):
    """A VIP level staff define: free (granted) or paid, for a number of days."""

    __tablename__ = "vip_tiers"
    __table_args__ = (
        CheckConstraint("price_amount >= 0", name="vip_price_not_negative"),
        CheckConstraint("duration_days > 0", name="vip_duration_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    price_amount: Mapped[int] = mapped_column(default=0)  # minor units, institution currency
    duration_days: Mapped[int] = mapped_column(default=365)
    perks: Mapped[str | None] = mapped_column(Text)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MembershipSource(enum.StrEnum):
    PAID = "paid"
    GRANTED = "granted"


class VipMembership(TenantScoped, Base):
    """A family's VIP time. A paid one is written when its payment succeeds (one per
    payment); `warned_at` and `lapsed_at` mark the reminder 3 days before the end and the
    removal from VIP groups on the day, each done once."""

    __tablename__ = "vip_memberships"
    __table_args__ = (
        UniqueConstraint("institution_id", "payment_id"),
        CheckConstraint("ends_at > starts_at", name="vip_membership_in_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    tier_id: Mapped[int] = parent_id("vip_tiers", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    source: Mapped[MembershipSource] = mapped_column(str_enum(MembershipSource))
    payment_id: Mapped[int | None] = parent_id("payments")
    granted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime] = mapped_column(index=True)
    warned_at: Mapped[datetime | None]
    lapsed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    tier: Mapped[VipTier] = relationship(foreign_keys=[tier_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])

    def is_active(self, now: datetime) -> bool:
        return self.starts_at <= now < self.ends_at
