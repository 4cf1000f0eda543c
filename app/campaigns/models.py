from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass, fields
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import CheckConstraint, Index, LargeBinary, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.contacts.models import Contact, Student
from app.courses.models import Course
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow
from app.payments.models import Payment
from app.text import masked_name

MAX_TEAM_HOURS = 6 * 24  # card holds last about 7 days; a team must settle well before


def new_code() -> str:
    return secrets.token_urlsafe(8)


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    PUBLISHED = "published"
    ENDED = "ended"


CAMPAIGN_STATUS_LABELS = {
    CampaignStatus.DRAFT: _l("Draft"),
    CampaignStatus.PUBLISHED: _l("Published"),
    CampaignStatus.ENDED: _l("Ended"),
}


class GroupBuy(TenantScoped, Base):
    """A group-buy campaign (拼团): a course sold at a group price to teams of `team_size`
    families who fill their team within `team_hours` of its opening."""

    __tablename__ = "group_buys"
    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    cover: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    cover_content_type: Mapped[str | None] = mapped_column(String(32))
    cover_updated_at: Mapped[datetime | None]
    course_id: Mapped[int] = parent_id("courses", index=True)  # NO ACTION: never deleted alone
    currency: Mapped[str] = mapped_column(String(3))
    list_price_amount: Mapped[int]
    group_price_amount: Mapped[int]
    leader_price_amount: Mapped[int | None]  # the team opener's price, if it differs
    team_size: Mapped[int]
    team_hours: Mapped[int]
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    team_limit: Mapped[int | None]  # teams in all; None: no limit
    per_contact_limit: Mapped[int] = mapped_column(default=1)  # teams one family may be in
    # Charge at once instead of holding the money: joining takes the payment, a team that
    # fills needs no capture, and a team that fails is refunded in full. WeChat Pay and
    # Alipay cannot hold money (no manual capture), so only in this mode does the Payment
    # Element offer them.
    is_charged_at_once: Mapped[bool] = mapped_column(default=False)
    status: Mapped[CampaignStatus] = mapped_column(
        str_enum(CampaignStatus), default=CampaignStatus.DRAFT
    )
    published_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    # Kept as things happen, so that the public page never counts (captured places; page
    # views counted in Redis and written back: app.counters).
    seats_sold: Mapped[int] = mapped_column(default=0)
    view_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship(foreign_keys=[course_id])

    @property
    def has_cover(self) -> bool:
        return self.cover_updated_at is not None

    @property
    def is_live(self) -> bool:
        """Published: price and team size can no longer change."""
        return self.status == CampaignStatus.PUBLISHED

    def is_open(self, now: datetime) -> bool:
        """Taking new teams and joins right now."""
        return self.is_live and self.starts_at <= now < self.ends_at

    def has_started(self, now: datetime) -> bool:
        return self.starts_at <= now

    def next_change(self, now: datetime) -> datetime | None:
        """When its public page next changes by itself: at its start, then at its end."""
        if now < self.starts_at:
            return self.starts_at
        return self.ends_at if now < self.ends_at else None

    def price_for(self, is_leader: bool) -> int:
        if is_leader and self.leader_price_amount is not None:
            return self.leader_price_amount
        return self.group_price_amount

    def team_deadline(self, opened_at: datetime) -> datetime:
        """A team's deadline: its window from opening, never past the campaign's end."""
        return min(opened_at + timedelta(hours=self.team_hours), self.ends_at)


class TeamStatus(enum.StrEnum):
    FORMING = "forming"
    SUCCEEDED = "succeeded"
    FAILED = "failed"


TEAM_STATUS_LABELS = {
    TeamStatus.FORMING: _l("Forming"),
    TeamStatus.SUCCEEDED: _l("Succeeded"),
    TeamStatus.FAILED: _l("Failed"),
}


class Team(TenantScoped, Base):
    """A team of a group buy. `member_count` counts members whose hold succeeded; it only
    moves by conditional UPDATEs, which is what keeps it at most `team_size`."""

    __tablename__ = "teams"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        Index("ix_teams_status_expires", "status", "expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    group_buy_id: Mapped[int] = parent_id("group_buys", ondelete="CASCADE", index=True)
    team_size: Mapped[int]  # the campaign's, copied when the team opens
    member_count: Mapped[int] = mapped_column(default=0)
    status: Mapped[TeamStatus] = mapped_column(str_enum(TeamStatus), default=TeamStatus.FORMING)
    opened_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    succeeded_at: Mapped[datetime | None]
    failed_at: Mapped[datetime | None]
    settled_at: Mapped[datetime | None]  # every hold captured (or failed) and enrolled

    group_buy: Mapped[GroupBuy] = relationship(foreign_keys=[group_buy_id])
    members: Mapped[list[TeamMember]] = relationship(
        back_populates="team", order_by="TeamMember.id", foreign_keys="TeamMember.team_id"
    )

    @property
    def seats_left(self) -> int:
        return max(self.team_size - self.member_count, 0)

    @property
    def topic(self) -> str:
        """The outbox topic of the leader's nudge (cancelled when the team is decided)."""
        return f"team-nudge:{self.id}"


class MemberStatus(enum.StrEnum):
    """A member's place and money. Holding (the default): pending -> authorised ->
    captured | released | failed. Charged at once (`GroupBuy.is_charged_at_once`):
    pending -> charged -> captured | refunded, or pending -> refunded when the team filled
    or closed while the family paid."""

    PENDING = "pending"  # paying
    AUTHORISED = "authorised"  # hold succeeded and a seat in the team claimed
    CHARGED = "charged"  # paid at once and a seat claimed; refunded if the team fails
    CAPTURED = "captured"  # paid for a team that filled
    RELEASED = "released"  # hold cancelled: nothing taken
    REFUNDED = "refunded"  # paid at once, then refunded in full
    FAILED = "failed"  # declined, or the capture did not go through


# Where a member may go from each state (services.campaigns changes it only along these).
MEMBER_TRANSITIONS = {
    MemberStatus.PENDING: {
        MemberStatus.AUTHORISED,
        MemberStatus.CHARGED,
        MemberStatus.RELEASED,
        MemberStatus.REFUNDED,
        MemberStatus.FAILED,
    },
    MemberStatus.AUTHORISED: {MemberStatus.CAPTURED, MemberStatus.RELEASED, MemberStatus.FAILED},
    MemberStatus.CHARGED: {MemberStatus.CAPTURED, MemberStatus.REFUNDED},
    MemberStatus.CAPTURED: set(),
    MemberStatus.RELEASED: set(),
    MemberStatus.REFUNDED: set(),
    MemberStatus.FAILED: set(),
}
ACTIVE_MEMBER = (
    MemberStatus.PENDING,
    MemberStatus.AUTHORISED,
    MemberStatus.CHARGED,
    MemberStatus.CAPTURED,
)
# A seat in the team: held, or paid (at once, or captured when the team filled).
SEATED_MEMBER = (MemberStatus.AUTHORISED, MemberStatus.CHARGED, MemberStatus.CAPTURED)
MEMBER_STATUS_LABELS = {
    MemberStatus.PENDING: _l("Paying"),
    MemberStatus.AUTHORISED: _l("Held"),
    MemberStatus.CHARGED: _l("Paid, team forming"),
    MemberStatus.CAPTURED: _l("Paid"),
    MemberStatus.RELEASED: _l("Released"),
    MemberStatus.REFUNDED: _l("Refunded"),
    MemberStatus.FAILED: _l("Failed"),
}


class ReleaseReason(enum.StrEnum):
    TEAM_FULL = "team_full"  # lost the race for the last seat
    TEAM_FAILED = "team_failed"
    STAFF = "staff"
    HOLD_EXPIRED = "hold_expired"  # Stripe dropped the hold before capture
    DECLINED = "declined"
    CAPTURE_FAILED = "capture_failed"
    ABANDONED = "abandoned"


RELEASE_REASON_LABELS = {
    ReleaseReason.TEAM_FULL: _l("The team filled up first"),
    ReleaseReason.TEAM_FAILED: _l("The team did not fill in time"),
    ReleaseReason.STAFF: _l("Released by staff"),
    ReleaseReason.HOLD_EXPIRED: _l("The card hold expired"),
    ReleaseReason.DECLINED: _l("The card was declined"),
    ReleaseReason.CAPTURE_FAILED: _l("The payment could not be taken"),
    ReleaseReason.ABANDONED: _l("Payment not completed"),
}


ACTIVE_STATUSES_SQL = "status IN ({})".format(", ".join(f"'{s.value}'" for s in ACTIVE_MEMBER))


class TeamMember(TenantScoped, Base):
    """A family in a team, with the payment that holds their money."""

    __tablename__ = "team_members"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        # One active place per family in a team; released or failed places may be retried.
        Index(
            "uq_team_members_active_contact",
            "team_id",
            "contact_id",
            unique=True,
            postgresql_where=text(ACTIVE_STATUSES_SQL),
            sqlite_where=text(ACTIVE_STATUSES_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    team_id: Mapped[int] = parent_id("teams", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    student_id: Mapped[int] = parent_id("students", ondelete="CASCADE")
    payment_id: Mapped[int | None] = parent_id("payments", index=True)
    enrolment_id: Mapped[int | None] = parent_id("enrolments")
    is_leader: Mapped[bool] = mapped_column(default=False)
    price_amount: Mapped[int]
    status: Mapped[MemberStatus] = mapped_column(
        str_enum(MemberStatus), default=MemberStatus.PENDING
    )
    release_reason: Mapped[ReleaseReason | None] = mapped_column(str_enum(ReleaseReason))
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    decided_at: Mapped[datetime | None]

    team: Mapped[Team] = relationship(back_populates="members", foreign_keys=[team_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])
    student: Mapped[Student] = relationship(foreign_keys=[student_id])
    payment: Mapped[Payment | None] = relationship(foreign_keys=[payment_id])

    @property
    def masked_name(self) -> str:
        """How other parents see this family: the first character and a mask."""
        return masked_name(self.contact.parent_name)

    @property
    def is_active(self) -> bool:
        return self.status in ACTIVE_MEMBER

    @property
    def is_charged_at_once(self) -> bool:
        """Paying at once rather than holding: how this family's payment was started."""
        return self.payment is not None and not self.payment.is_manual_capture

    @property
    def has_seat(self) -> bool:
        """Counted in the team: held, or paid."""
        return self.status in SEATED_MEMBER

    def can_become(self, status: MemberStatus) -> bool:
        return status in MEMBER_TRANSITIONS[self.status]


# --- flash sales (秒杀) ----------------------------------------------------------------------


class FlashSaleStatus(enum.StrEnum):
    """Staff's side of a sale's life. Live, sold out and over are read from the clock and
    the counts (`FlashSale.phase`), so no job has to flip them on time."""

    DRAFT = "draft"
    SCHEDULED = "scheduled"  # published: the page is up, the price is locked
    ENDED = "ended"  # ended early by staff


class FlashPhase(enum.StrEnum):
    DRAFT = "draft"
    UPCOMING = "upcoming"
    LIVE = "live"
    SOLD_OUT = "sold_out"
    ENDED = "ended"


FLASH_PHASE_LABELS = {
    FlashPhase.DRAFT: _l("Draft"),
    FlashPhase.UPCOMING: _l("Upcoming"),
    FlashPhase.LIVE: _l("Live"),
    FlashPhase.SOLD_OUT: _l("All seats sold"),
    FlashPhase.ENDED: _l("Ended"),
}


class FlashSale(TenantScoped, Base):
    """A flash sale: `stock` seats of a course at `sale_price_amount` between `starts_at`
    and `ends_at`, at most `per_family_limit` per family, each order paid within
    `pay_minutes`. `sold` (paid orders) and `reserved` (orders waiting for payment) move
    only by conditional UPDATEs, and the database refuses `sold + reserved > stock`: the
    last guard against overselling, whatever Redis says."""

    __tablename__ = "flash_sales"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        CheckConstraint("sold >= 0 AND reserved >= 0", name="flash_counts_not_negative"),
        CheckConstraint("sold + reserved <= stock", name="flash_never_oversold"),
        CheckConstraint("ends_at > starts_at", name="flash_window_in_order"),
        CheckConstraint("per_family_limit >= 1", name="flash_limit_positive"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    cover: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    cover_content_type: Mapped[str | None] = mapped_column(String(32))
    cover_updated_at: Mapped[datetime | None]
    course_id: Mapped[int] = parent_id("courses", index=True)  # NO ACTION: never deleted alone
    currency: Mapped[str] = mapped_column(String(3))
    list_price_amount: Mapped[int]
    sale_price_amount: Mapped[int]
    stock: Mapped[int]
    sold: Mapped[int] = mapped_column(default=0)
    reserved: Mapped[int] = mapped_column(default=0)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    per_family_limit: Mapped[int] = mapped_column(default=1)
    pay_minutes: Mapped[int] = mapped_column(default=10)
    status: Mapped[FlashSaleStatus] = mapped_column(
        str_enum(FlashSaleStatus), default=FlashSaleStatus.DRAFT
    )
    published_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(default=0)  # counted in Redis, written back
    view_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    course: Mapped[Course] = relationship(foreign_keys=[course_id])

    @property
    def has_cover(self) -> bool:
        return self.cover_updated_at is not None

    @property
    def is_published(self) -> bool:
        return self.status != FlashSaleStatus.DRAFT

    @property
    def seats_left(self) -> int:
        return max(self.stock - self.sold - self.reserved, 0)

    def phase(self, now: datetime) -> FlashPhase:
        if self.status == FlashSaleStatus.DRAFT:
            return FlashPhase.DRAFT
        if self.status == FlashSaleStatus.ENDED or now >= self.ends_at:
            return FlashPhase.ENDED
        if now < self.starts_at:
            return FlashPhase.UPCOMING
        return FlashPhase.SOLD_OUT if self.sold >= self.stock else FlashPhase.LIVE

    def is_open(self, now: datetime) -> bool:
        """Taking attempts now (stock is Redis's and the database's to decide)."""
        return _taking_attempts(self, now)

    def next_change(self, now: datetime) -> datetime | None:
        if now < self.starts_at:
            return self.starts_at
        return self.ends_at if now < self.ends_at else None


def _taking_attempts(sale: FlashSale | FlashTerms, now: datetime) -> bool:
    return sale.status == FlashSaleStatus.SCHEDULED and sale.starts_at <= now < sale.ends_at


@dataclass(frozen=True)
class FlashTerms:
    """What deciding an attempt needs of a sale, as plain values: kept in each web
    process's memory while the sale's page version stands (app.campaigns.services
    .flash_terms), so the crowd's taps ask nothing of the database."""

    id: int
    institution_id: int
    code: str
    status: FlashSaleStatus
    starts_at: datetime
    ends_at: datetime
    per_family_limit: int
    pay_minutes: int

    @classmethod
    def of(cls, sale: FlashSale) -> FlashTerms:
        return cls(**{field.name: getattr(sale, field.name) for field in fields(cls)})

    @property
    def is_published(self) -> bool:
        return self.status != FlashSaleStatus.DRAFT

    def is_open(self, now: datetime) -> bool:
        return _taking_attempts(self, now)


class FlashOrderStatus(enum.StrEnum):
    PENDING = "pending"  # a seat reserved, waiting for the payment
    PAID = "paid"
    EXPIRED = "expired"  # not paid in time: the seat went back
    REFUNDED = "refunded"  # paid after it expired: the money went back


ACTIVE_FLASH_ORDER = (FlashOrderStatus.PENDING, FlashOrderStatus.PAID)
FLASH_ORDER_STATUS_LABELS = {
    FlashOrderStatus.PENDING: _l("Waiting for payment"),
    FlashOrderStatus.PAID: _l("Paid"),
    FlashOrderStatus.EXPIRED: _l("Expired"),
    FlashOrderStatus.REFUNDED: _l("Refunded"),
}


class FlashOrder(TenantScoped, Base):
    """One seat a family reserved in a flash sale. `attempt_key` is the buyer's attempt
    (a retried tap is the same attempt: unique per sale); `phone` is the family's number
    as the Redis limit counts it."""

    __tablename__ = "flash_orders"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        UniqueConstraint("flash_sale_id", "attempt_key"),
        Index("ix_flash_orders_status_pay_by", "status", "pay_by"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    flash_sale_id: Mapped[int] = parent_id("flash_sales", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    student_id: Mapped[int] = parent_id("students", ondelete="CASCADE")
    payment_id: Mapped[int | None] = parent_id("payments", index=True)
    enrolment_id: Mapped[int | None] = parent_id("enrolments")
    attempt_key: Mapped[str] = mapped_column(String(64))
    phone: Mapped[str] = mapped_column(String(20))
    price_amount: Mapped[int]
    status: Mapped[FlashOrderStatus] = mapped_column(
        str_enum(FlashOrderStatus), default=FlashOrderStatus.PENDING
    )
    pay_by: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    paid_at: Mapped[datetime | None]
    expired_at: Mapped[datetime | None]
    refunded_at: Mapped[datetime | None]

    flash_sale: Mapped[FlashSale] = relationship(foreign_keys=[flash_sale_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])
    student: Mapped[Student] = relationship(foreign_keys=[student_id])
    payment: Mapped[Payment | None] = relationship(foreign_keys=[payment_id])


class FlashReminder(TenantScoped, Base):
    """A family asked to be told when a sale starts: one row per sale and family; the
    message goes out once through the outbox (its dedupe key) 5 minutes before."""

    __tablename__ = "flash_reminders"
    __table_args__ = (UniqueConstraint("flash_sale_id", "contact_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    flash_sale_id: Mapped[int] = parent_id("flash_sales", ondelete="CASCADE")
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
