"""Groups (社群): an institution's own communities of families, their members and feed.

A group has members (families: a contact, with a role), invite codes to join it by link or
QR code, and a feed of posts: announcements by staff, posts by members and staff, and
replies. What a member writes passes the group's moderation rules first, and is then
published, held for review or blocked; every decision is kept in `moderation_actions`.
"""

from __future__ import annotations

import enum
import secrets
from datetime import date, datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.contacts.models import Contact
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow
from app.text import masked_name

MAX_POST_LENGTH = 2000
MAX_POST_IMAGES = 9


def new_code() -> str:
    return secrets.token_urlsafe(8)


class GroupKind(enum.StrEnum):
    TRIAL = "trial"  # families of a trial course, closed some days after its last lesson
    CLASS = "class"  # families enrolled in a regular course
    VIP = "vip"  # families with an active VIP membership
    OPEN = "open"  # anyone with the link


GROUP_KIND_LABELS = {
    GroupKind.TRIAL: _l("Trial group"),
    GroupKind.CLASS: _l("Class group"),
    GroupKind.VIP: _l("VIP club"),
    GroupKind.OPEN: _l("Open community"),
}


class Outcome(enum.StrEnum):
    """What a moderation rule does with a post that breaks it."""

    PUBLISH = "publish"
    HOLD = "hold"  # shown to its author as 待审核 until staff decide
    BLOCK = "block"  # refused, with the reason shown to its author


OUTCOME_LABELS = {
    Outcome.PUBLISH: _l("Publish"),
    Outcome.HOLD: _l("Hold for review"),
    Outcome.BLOCK: _l("Block"),
}

# The rules a group sets an outcome for, with what a member is told when one applies.
RULES = {
    "link": _l("links to other sites"),
    "phone": _l("phone numbers"),
    "wechat": _l("WeChat IDs"),
    "keyword": _l("words this group does not allow"),
    "qr": _l("QR codes in pictures"),
    "flood": _l("too many posts in a short time"),
}


class Group(TenantScoped, Base):
    """A community of families. Its settings include the outcome of each moderation rule;
    a new member may be muted for a while, and members who break rules three times may be
    muted (`strikes_to_mute`)."""

    __tablename__ = "groups"
    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    kind: Mapped[GroupKind] = mapped_column(str_enum(GroupKind), default=GroupKind.OPEN)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    rules: Mapped[str] = mapped_column(Text, default="")  # 群规, accepted on joining
    course_id: Mapped[int | None] = parent_id("courses", index=True)
    member_cap: Mapped[int | None]
    needs_approval: Mapped[bool] = mapped_column(default=False)
    closes_at: Mapped[datetime | None]
    # A trial group closes this many days after its course's last lesson, and says goodbye
    # with `farewell` (the offer of the course that follows), posted as an announcement.
    close_days_after_last_lesson: Mapped[int | None]
    farewell: Mapped[str | None] = mapped_column(Text)
    farewell_posted_at: Mapped[datetime | None]
    # Moderation: an outcome per rule, the links and words it knows.
    link_outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), default=Outcome.HOLD)
    phone_outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), default=Outcome.HOLD)
    wechat_outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), default=Outcome.HOLD)
    keyword_outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), default=Outcome.BLOCK)
    qr_outcome: Mapped[Outcome] = mapped_column(str_enum(Outcome), default=Outcome.HOLD)
    allowed_domains: Mapped[list] = mapped_column(JSON, default=list)
    keywords: Mapped[list] = mapped_column(JSON, default=list)
    flood_posts: Mapped[int] = mapped_column(default=5)  # more within 30 s is a flood
    new_member_mute_minutes: Mapped[int] = mapped_column(default=0)
    strikes_to_mute: Mapped[int | None]  # held or blocked posts before a member is muted
    strike_mute_hours: Mapped[int] = mapped_column(default=24)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def is_closed(self, now: datetime) -> bool:
        return self.closes_at is not None and self.closes_at <= now

    def outcome_of(self, rule: str) -> Outcome:
        if rule == "flood":
            return Outcome.BLOCK
        return getattr(self, f"{rule}_outcome")


class JoinVia(enum.StrEnum):
    LINK = "link"
    QR = "qr"
    STAFF = "staff"
    COURSE = "course"
    CAMPAIGN = "campaign"
    REFERRAL = "referral"


JOIN_VIA_LABELS = {
    JoinVia.LINK: _l("Link"),
    JoinVia.QR: _l("QR code"),
    JoinVia.STAFF: _l("Added by staff"),
    JoinVia.COURSE: _l("From a course"),
    JoinVia.CAMPAIGN: _l("From a campaign"),
    JoinVia.REFERRAL: _l("Referred by a member"),
}


class GroupInvite(TenantScoped, Base):
    """A code to join a group by (`/<slug>/j/<code>`), shared as a link or a QR code; it
    can be revoked, given an expiry and a cap on its uses (`uses` moves only by a
    conditional UPDATE, which is what keeps it at most the cap)."""

    __tablename__ = "group_invites"
    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE", index=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    label: Mapped[str | None] = mapped_column(String(80))  # where staff shared it
    expires_at: Mapped[datetime | None]
    use_cap: Mapped[int | None]
    uses: Mapped[int] = mapped_column(default=0)
    revoked_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[Group] = relationship(foreign_keys=[group_id])

    def is_usable(self, now: datetime) -> bool:
        return (
            self.revoked_at is None
            and (self.expires_at is None or now < self.expires_at)
            and (self.use_cap is None or self.uses < self.use_cap)
        )


class MemberRole(enum.StrEnum):
    TEACHER = "teacher"
    ASSISTANT = "assistant"  # 班主任
    MEMBER = "member"


MEMBER_ROLE_LABELS = {
    MemberRole.TEACHER: _l("Teacher"),
    MemberRole.ASSISTANT: _l("Class assistant"),
    MemberRole.MEMBER: _l("Member"),
}


class MemberStatus(enum.StrEnum):
    PENDING = "pending"  # waiting for staff approval
    ACTIVE = "active"
    REMOVED = "removed"  # may join again
    BANNED = "banned"  # may not


MEMBER_STATUS_LABELS = {
    MemberStatus.PENDING: _l("Waiting for approval"),
    MemberStatus.ACTIVE: _l("Member"),
    MemberStatus.REMOVED: _l("Removed"),
    MemberStatus.BANNED: _l("Banned"),
}


class GroupMember(TenantScoped, Base):
    """A family in a group: one row per group and contact, whatever happens to it."""

    __tablename__ = "group_members"
    __table_args__ = (
        UniqueConstraint("group_id", "contact_id"),
        Index("ix_group_members_group_status", "group_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE")
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    role: Mapped[MemberRole] = mapped_column(str_enum(MemberRole), default=MemberRole.MEMBER)
    status: Mapped[MemberStatus] = mapped_column(
        str_enum(MemberStatus), default=MemberStatus.ACTIVE
    )
    joined_via: Mapped[JoinVia] = mapped_column(str_enum(JoinVia), default=JoinVia.LINK)
    invite_id: Mapped[int | None] = parent_id("group_invites")
    rules_accepted_at: Mapped[datetime | None]
    muted_until: Mapped[datetime | None]
    strikes: Mapped[int] = mapped_column(default=0)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)
    left_at: Mapped[datetime | None]  # removed or banned

    group: Mapped[Group] = relationship(foreign_keys=[group_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])

    @property
    def is_active(self) -> bool:
        return self.status == MemberStatus.ACTIVE

    @property
    def masked_name(self) -> str:
        """How other families see this one."""
        return masked_name(self.contact.parent_name)

    def is_muted(self, now: datetime) -> bool:
        return self.muted_until is not None and now < self.muted_until


class PostKind(enum.StrEnum):
    ANNOUNCEMENT = "announcement"
    POST = "post"
    REPLY = "reply"


class PostStatus(enum.StrEnum):
    PUBLISHED = "published"
    HELD = "held"  # 待审核: its author sees it, nobody else
    BLOCKED = "blocked"
    REMOVED = "removed"  # by staff, or rejected from review


class Post(TenantScoped, Base):
    """An announcement, a post or a reply in a group's feed, by a member or a staff user.
    `findings` are what moderation found in it ({"rule", "excerpt"} each)."""

    __tablename__ = "group_posts"
    __table_args__ = (Index("ix_group_posts_feed", "group_id", "status", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE")
    kind: Mapped[PostKind] = mapped_column(str_enum(PostKind), default=PostKind.POST)
    reply_to_id: Mapped[int | None] = parent_id("group_posts", ondelete="CASCADE", index=True)
    member_id: Mapped[int | None] = parent_id("group_members", ondelete="CASCADE", index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    body: Mapped[str] = mapped_column(Text)
    is_pinned: Mapped[bool] = mapped_column(default=False)
    is_question: Mapped[bool] = mapped_column(default=False)  # for the teacher to answer
    answered_at: Mapped[datetime | None]
    status: Mapped[PostStatus] = mapped_column(str_enum(PostStatus), default=PostStatus.PUBLISHED)
    findings: Mapped[list] = mapped_column(JSON, default=list)
    publish_at: Mapped[datetime] = mapped_column(default=utcnow)  # later: scheduled
    # A post with pictures is held until a job has looked at them (QR codes).
    image_count: Mapped[int] = mapped_column(default=0)
    images_checked_at: Mapped[datetime | None]
    notified_at: Mapped[datetime | None]  # an announcement's messages were queued
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    member: Mapped[GroupMember | None] = relationship(foreign_keys=[member_id])
    images: Mapped[list[PostImage]] = relationship(
        order_by="PostImage.position", foreign_keys="PostImage.post_id"
    )

    @property
    def by_staff(self) -> bool:
        return self.member_id is None

    @property
    def awaits_image_check(self) -> bool:
        """Held only until a job has looked at its pictures."""
        return self.image_count > 0 and self.images_checked_at is None


class PostImage(TenantScoped, Base):
    """A picture of a post, as Cohort re-encoded it (app.images.reencoded_photo: checked,
    turned upright, at most 2048 px, EXIF and other metadata gone)."""

    __tablename__ = "group_post_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = parent_id("group_posts", ondelete="CASCADE", index=True)
    position: Mapped[int]
    data: Mapped[bytes] = deferred(mapped_column(LargeBinary, nullable=False))
    content_type: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PostReaction(TenantScoped, Base):
    """A member's one reaction to a post (a 👍): at most one per member and post."""

    __tablename__ = "group_post_reactions"
    __table_args__ = (UniqueConstraint("post_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = parent_id("group_posts", ondelete="CASCADE")
    member_id: Mapped[int] = parent_id("group_members", ondelete="CASCADE", index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ActivityKind(enum.StrEnum):
    VIEWED = "viewed"
    POSTED = "posted"
    REPLIED = "replied"
    REACTED = "reacted"


class MemberActivity(TenantScoped, Base):
    """That a member did something in a group on a day (the institution's): one row per
    member, day and kind at most, from which daily, weekly and monthly active members are
    counted. Posts are recorded as they are written; views are gathered in Redis and
    written by a job (a GET never writes)."""

    __tablename__ = "member_activity"
    __table_args__ = (
        UniqueConstraint("member_id", "day", "kind"),
        Index("ix_member_activity_group_day", "group_id", "day"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE")
    member_id: Mapped[int] = parent_id("group_members", ondelete="CASCADE")
    day: Mapped[date]
    kind: Mapped[ActivityKind] = mapped_column(str_enum(ActivityKind))


class AnnouncementRead(TenantScoped, Base):
    """That a member had an announcement on their screen (their group page showed it)."""

    __tablename__ = "announcement_reads"
    __table_args__ = (UniqueConstraint("post_id", "member_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = parent_id("group_posts", ondelete="CASCADE")
    member_id: Mapped[int] = parent_id("group_members", ondelete="CASCADE", index=True)
    read_at: Mapped[datetime] = mapped_column(default=utcnow)


ACTION_LABELS = {
    "held": _l("Held for review"),
    "blocked": _l("Blocked"),
    "approved": _l("Approved"),
    "rejected": _l("Rejected"),
    "removed": _l("Removed"),
    "banned": _l("Banned"),
    "muted": _l("Muted"),
    "role": _l("Role changed"),
    "reported": _l("Reported by a member"),
    "kept": _l("Kept after a report"),
}


class ModerationAction(TenantScoped, Base):
    """The moderation log, append-only: what happened to a post or a member, why, and who
    did it (no user: the group's rules)."""

    __tablename__ = "moderation_actions"
    __table_args__ = (Index("ix_moderation_actions_group", "group_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE")
    post_id: Mapped[int | None] = parent_id("group_posts", ondelete="CASCADE", index=True)
    member_id: Mapped[int | None] = parent_id("group_members", ondelete="CASCADE", index=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    action: Mapped[str] = mapped_column(String(16))  # held, blocked, approved, rejected, ...
    reason: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
