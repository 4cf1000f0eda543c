from __future__ import annotations

import enum
import secrets
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.ext.associationproxy import association_proxy
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.accounts.models import User
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow


class SourceKind(enum.StrEnum):
    FORM = "form"
    CAMPAIGN = "campaign"
    COURSE = "course"
    REFERRAL = "referral"
    IMPORT = "import"
    STAFF = "staff"


SOURCE_LABELS = {
    SourceKind.FORM: _l("Lead form"),
    SourceKind.CAMPAIGN: _l("Campaign"),
    SourceKind.COURSE: _l("Course"),
    SourceKind.REFERRAL: _l("Referral"),
    SourceKind.IMPORT: _l("Import"),
    SourceKind.STAFF: _l("Added by staff"),
}


class EventKind(enum.StrEnum):
    CREATED = "created"
    TOUCH = "touch"
    UPDATED = "updated"
    MERGED = "merged"
    NOTE = "note"
    LEAD = "lead"
    COURSE = "course"  # enrolled, seat cancelled, attendance
    CAMPAIGN = "campaign"  # joined a group-buy team, team succeeded or failed


CAMPAIGN_EVENT_LABELS = {
    "joined": _l("joined a team"),
    "succeeded": _l("team filled, enrolled"),
    "failed": _l("team did not fill"),
}


def new_referral_code() -> str:
    return secrets.token_urlsafe(6)


@dataclass
class FamilyDetails:
    """A family as a parent describes it on a public page: one parent, one child."""

    parent_name: str
    phone: str
    student_name: str
    student_grade: str | None = None
    email: str | None = None
    consent_text: str | None = None
    locale: str | None = None  # the language of the page they used


# Fields a public action may fill in but never overwrite once staff have edited them.
MERGEABLE_FIELDS = ("parent_name", "email", "wechat_id")


class Tag(TenantScoped, Base):
    __tablename__ = "tags"
    __table_args__ = (UniqueConstraint("institution_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(40))


class ContactTag(TenantScoped, Base):
    """A tag on a contact (an association row, carrying the institution like every row)."""

    __tablename__ = "contact_tags"

    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", primary_key=True)
    tag_id: Mapped[int] = parent_id("tags", ondelete="CASCADE", primary_key=True)
    tag: Mapped[Tag] = relationship(lazy="joined", foreign_keys=[tag_id])


class Contact(TenantScoped, Base):
    """One family as the institution knows it, found again by its phone number."""

    __tablename__ = "contacts"
    __table_args__ = (
        UniqueConstraint("institution_id", "phone"),
        UniqueConstraint("institution_id", "referral_code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    parent_name: Mapped[str] = mapped_column(String(80))
    phone: Mapped[str] = mapped_column(String(20))  # E.164
    email: Mapped[str | None] = mapped_column(String(254))
    wechat_id: Mapped[str | None] = mapped_column(String(64))
    notes: Mapped[str | None] = mapped_column(Text)
    consent_text: Mapped[str | None] = mapped_column(Text)
    consent_at: Mapped[datetime | None]
    # The language the family last used on one of our pages; their messages are in it.
    locale: Mapped[str | None] = mapped_column(String(8))
    owner_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    referral_code: Mapped[str] = mapped_column(String(16), default=new_referral_code)
    # Names of fields staff have edited by hand; public actions leave those alone.
    staff_edited: Mapped[list] = mapped_column(JSON, default=list)
    first_touch_id: Mapped[int | None] = parent_id("contact_touches", use_alter=True)
    latest_touch_id: Mapped[int | None] = parent_id("contact_touches", use_alter=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    owner: Mapped[User | None] = relationship()
    students: Mapped[list[Student]] = relationship(
        back_populates="contact",
        order_by="Student.id",
        cascade="all, delete-orphan",
        foreign_keys="Student.contact_id",
    )
    tag_links: Mapped[list[ContactTag]] = relationship(
        cascade="all, delete-orphan", foreign_keys="ContactTag.contact_id"
    )
    tags = association_proxy(
        "tag_links",
        "tag",
        creator=lambda tag: ContactTag(institution_id=tag.institution_id, tag=tag),
    )
    first_touch: Mapped[ContactTouch | None] = relationship(
        foreign_keys=[first_touch_id], post_update=True
    )
    latest_touch: Mapped[ContactTouch | None] = relationship(
        foreign_keys=[latest_touch_id], post_update=True
    )

    @property
    def student_names(self) -> str:
        return ", ".join(student.name for student in self.students)


class Student(TenantScoped, Base):
    """A child of a contact."""

    __tablename__ = "students"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    name: Mapped[str] = mapped_column(String(80))
    grade: Mapped[str | None] = mapped_column(String(40))
    birth_year: Mapped[int | None]
    school: Mapped[str | None] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    contact: Mapped[Contact] = relationship(back_populates="students", foreign_keys=[contact_id])


class ContactTouch(TenantScoped, Base):
    """One arrival of a contact: which form, campaign or referral brought them, with UTM."""

    __tablename__ = "contact_touches"
    __table_args__ = (Index("ix_contact_touches_source", "institution_id", "kind", "ref"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    kind: Mapped[SourceKind] = mapped_column(str_enum(SourceKind))
    ref: Mapped[str | None] = mapped_column(String(64))  # form code, campaign code, ...
    referral_code: Mapped[str | None] = mapped_column(String(64))
    utm_source: Mapped[str | None] = mapped_column(String(100))
    utm_medium: Mapped[str | None] = mapped_column(String(100))
    utm_campaign: Mapped[str | None] = mapped_column(String(100))
    referrer: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


# How a first touch's referrer is grouped in the funnel: the first family whose host names
# one appears in the address (lowercased); no referrer is "direct", any other "other".
REFERRER_FAMILIES = (
    ("wechat", ("weixin.qq.com", "wx.qq.com", "servicewechat.com", "weixin")),
    ("douyin", ("douyin.com", "iesdouyin.com")),
    ("xiaohongshu", ("xiaohongshu.com", "xhslink.com")),
    ("weibo", ("weibo.com", "weibo.cn")),
    ("qq", ("qq.com",)),
    ("baidu", ("baidu.com",)),
    ("google", ("google.",)),
    ("bing", ("bing.com",)),
)


def referrer_family(referrer: str | None) -> str:
    if not referrer:
        return "direct"
    lowered = referrer.lower()
    return next(
        (name for name, hosts in REFERRER_FAMILIES if any(host in lowered for host in hosts)),
        "other",
    )


# The funnel's stages after the first touch, in order: a family that reached stage number n
# (1 to 5) reached every stage before it too.
PROGRESS_STAGES = ("lead_at", "contacted_at", "booked_at", "attended_at", "enrolled_at")
# Where a family came from, as the funnel breaks families down.
PROGRESS_SOURCE = (
    "channel",
    "form",
    "campaign",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
)


class FamilyProgress(TenantScoped, Base):
    """Where a family came from and how far it has come, one row per contact: what the
    staff dashboard's funnel reads (a range of `first_seen_at` of one institution) instead
    of every lead event's JSON and every first touch.

    The row is written with the contact, from its first touch (`first_seen_at` is the
    contact's `created_at`); the leads domain moves it on through `record_progress` in the
    statement that records each stage change or handover; a merge folds the duplicate's
    row into the survivor's. Times are the first time each stage was reached (a lost lead
    keeps them; a later lead of the same family can only add to them); `rank` is the
    furthest stage reached (0: none)."""

    __tablename__ = "family_progress"
    __table_args__ = (
        Index("ix_family_progress_institution_seen", "institution_id", "first_seen_at"),
    )

    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", primary_key=True)
    first_seen_at: Mapped[datetime]
    # The first touch, as the funnel breaks it down: the channel (its kind, or "referral"
    # when a family's code came with it), the form's or campaign's code, UTM ("" for none)
    # and the referrer's family (REFERRER_FAMILIES).
    channel: Mapped[str] = mapped_column(String(16), default="")
    form: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    utm_source: Mapped[str] = mapped_column(String(100), default="")
    utm_medium: Mapped[str] = mapped_column(String(100), default="")
    utm_campaign: Mapped[str] = mapped_column(String(100), default="")
    referrer: Mapped[str] = mapped_column(String(16), default="direct")
    rank: Mapped[int] = mapped_column(default=0)
    lead_at: Mapped[datetime | None]
    contacted_at: Mapped[datetime | None]
    booked_at: Mapped[datetime | None]
    attended_at: Mapped[datetime | None]
    enrolled_at: Mapped[datetime | None]
    # The family's newest lead, and the staff member who owns it.
    lead_id: Mapped[int | None]
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class ContactEvent(TenantScoped, Base):
    """A line on a contact's timeline."""

    __tablename__ = "contact_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    kind: Mapped[EventKind] = mapped_column(str_enum(EventKind))
    data: Mapped[dict] = mapped_column(JSON, default=dict)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    actor: Mapped[User | None] = relationship()
