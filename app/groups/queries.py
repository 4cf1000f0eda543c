"""Reads of groups, members and feeds."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.contacts.models import Contact
from app.courses.models import Lesson
from app.db import scoped_select, utcnow
from app.extensions import db
from app.groups.models import (
    AnnouncementRead,
    Group,
    GroupInvite,
    GroupKind,
    GroupMember,
    MemberActivity,
    MemberStatus,
    ModerationAction,
    Post,
    PostImage,
    PostKind,
    PostReaction,
    PostStatus,
)

FEED_SIZE = 50


def all_groups(institution) -> list[Group]:
    return list(db.session.scalars(scoped_select(Group, institution).order_by(Group.id.desc())))


def group_by_code(institution, code: str) -> Group | None:
    return db.session.scalar(scoped_select(Group, institution).where(Group.code == code))


def invite_by_code(institution, code: str) -> GroupInvite | None:
    return db.session.scalar(
        scoped_select(GroupInvite, institution)
        .where(GroupInvite.code == code)
        .options(selectinload(GroupInvite.group))
    )


@dataclass(frozen=True)
class GroupOffer:
    """The group a family of a course is offered after registering, paying or winning a
    group buy, and how they get in: `invite`, or None when they are in it already (they
    go to its page)."""

    group: Group
    invite: GroupInvite | None


def offer_for_course(course, contact, now: datetime) -> GroupOffer | None:
    """The course's group offered to the family (`contact`; None: a family not known): the
    newest open one they are in (a paid course and a filled group-buy team put them in its
    class groups), else the first usable invitation of the newest open group that has one.
    None if the course has no open group to offer."""
    groups = [
        group
        for group in db.session.scalars(
            select(Group)
            .where(Group.institution_id == course.institution_id, Group.course_id == course.id)
            .order_by(Group.id.desc())
        )
        if not group.is_closed(now)
    ]
    if not groups:
        return None
    if contact is not None:
        theirs = set(
            db.session.scalars(
                select(GroupMember.group_id).where(
                    GroupMember.group_id.in_([group.id for group in groups]),
                    GroupMember.contact_id == contact.id,
                    GroupMember.status.in_([MemberStatus.ACTIVE, MemberStatus.PENDING]),
                )
            )
        )
        for group in groups:
            if group.id in theirs:
                return GroupOffer(group, None)
    for group in groups:
        invite = open_invite(group, now)
        if invite is not None:
            return GroupOffer(group, invite)
    return None


def open_invite(group: Group, now: datetime) -> GroupInvite | None:
    """A usable invitation of the group, for someone who opened its page without being a
    member (an open community's page leads them to it)."""
    return next((invite for invite in invites(group) if invite.is_usable(now)), None)


def family_groups(contact) -> list[Group]:
    """The groups a family is an active member of, newest first."""
    return list(
        db.session.scalars(
            select(Group)
            .join(GroupMember, GroupMember.group_id == Group.id)
            .where(
                Group.institution_id == contact.institution_id,
                GroupMember.contact_id == contact.id,
                GroupMember.status == MemberStatus.ACTIVE,
            )
            .order_by(Group.id.desc())
        )
    )


def vip_clubs(institution, contact, now: datetime) -> list[GroupOffer]:
    """The institution's open VIP clubs offered to a VIP family (on its page): each one
    they are in (invite None: they go to its page), else its usable invitation. A club
    without one, or that banned them, is left out."""
    clubs = [
        group
        for group in db.session.scalars(
            scoped_select(Group, institution).where(Group.kind == GroupKind.VIP).order_by(Group.id)
        )
        if not group.is_closed(now)
    ]
    if not clubs:
        return []
    statuses = dict(
        db.session.execute(
            select(GroupMember.group_id, GroupMember.status).where(
                GroupMember.group_id.in_([group.id for group in clubs]),
                GroupMember.contact_id == contact.id,
            )
        ).all()
    )
    offers = []
    for group in clubs:
        status = statuses.get(group.id)
        if status in (MemberStatus.ACTIVE, MemberStatus.PENDING):
            offers.append(GroupOffer(group, None))
        elif status != MemberStatus.BANNED and (invite := open_invite(group, now)) is not None:
            offers.append(GroupOffer(group, invite))
    return offers


def reported_posts(group: Group) -> list[Post]:
    """Published posts that members reported since staff last kept them."""
    reports = (
        select(ModerationAction.post_id, func.max(ModerationAction.id).label("last"))
        .where(ModerationAction.group_id == group.id, ModerationAction.action == "reported")
        .group_by(ModerationAction.post_id)
        .subquery()
    )
    kept = (
        select(ModerationAction.post_id, func.max(ModerationAction.id).label("last"))
        .where(ModerationAction.group_id == group.id, ModerationAction.action == "kept")
        .group_by(ModerationAction.post_id)
        .subquery()
    )
    return list(
        db.session.scalars(
            select(Post)
            .join(reports, reports.c.post_id == Post.id)
            .outerjoin(kept, kept.c.post_id == Post.id)
            .where(
                Post.status == PostStatus.PUBLISHED,
                (kept.c.last.is_(None)) | (kept.c.last < reports.c.last),
            )
            .options(selectinload(Post.member).selectinload(GroupMember.contact))
            .order_by(Post.id)
        )
    )


def invites(group: Group) -> list[GroupInvite]:
    return list(
        db.session.scalars(
            select(GroupInvite).where(GroupInvite.group_id == group.id).order_by(GroupInvite.id)
        )
    )


def member_of(group: Group, contact) -> GroupMember | None:
    if contact is None:
        return None
    return db.session.scalar(
        select(GroupMember).where(
            GroupMember.group_id == group.id, GroupMember.contact_id == contact.id
        )
    )


def members(group: Group, status: MemberStatus | None = None) -> list[GroupMember]:
    query = (
        select(GroupMember)
        .where(GroupMember.group_id == group.id)
        .options(selectinload(GroupMember.contact))
        .order_by(GroupMember.joined_at)
    )
    if status is not None:
        query = query.where(GroupMember.status == status)
    return list(db.session.scalars(query))


def member_counts(institution) -> dict[int, int]:
    """Active members of each of the institution's groups."""
    rows = db.session.execute(
        select(GroupMember.group_id, func.count())
        .where(
            GroupMember.institution_id == institution.id,
            GroupMember.status == MemberStatus.ACTIVE,
        )
        .group_by(GroupMember.group_id)
    )
    return dict(rows.all())


def feed(group: Group, now: datetime, viewer: GroupMember | None = None, after: int = 0):
    """The group's posts (not replies) newest first, pinned announcements on top, with their
    replies: what is published, and what the viewer wrote that waits for review. `after`: only
    posts and replies newer than that id (an open page's update)."""
    visible = Post.status == PostStatus.PUBLISHED
    if viewer is not None:
        visible = visible | ((Post.member_id == viewer.id) & (Post.status == PostStatus.HELD))
    query = (
        select(Post)
        .where(Post.group_id == group.id, visible, Post.publish_at <= now, Post.id > after)
        .options(
            selectinload(Post.member).selectinload(GroupMember.contact),
            selectinload(Post.images),
        )
    )
    posts = list(db.session.scalars(query.order_by(Post.id.desc()).limit(FEED_SIZE * 4)))
    top = [p for p in posts if p.kind != PostKind.REPLY][:FEED_SIZE]
    replies: dict[int, list[Post]] = {}
    for post in sorted(posts, key=lambda p: p.id):
        if post.kind == PostKind.REPLY:
            replies.setdefault(post.reply_to_id, []).append(post)
    top.sort(key=lambda p: (not (p.is_pinned and p.kind == PostKind.ANNOUNCEMENT), -p.id))
    return top, replies


def held_posts(group: Group) -> list[Post]:
    return list(
        db.session.scalars(
            select(Post)
            .where(Post.group_id == group.id, Post.status == PostStatus.HELD)
            .options(selectinload(Post.member).selectinload(GroupMember.contact))
            .order_by(Post.id)
        )
    )


def unanswered_questions(group: Group) -> list[Post]:
    return list(
        db.session.scalars(
            select(Post)
            .where(
                Post.group_id == group.id,
                Post.is_question.is_(True),
                Post.answered_at.is_(None),
                Post.status == PostStatus.PUBLISHED,
            )
            .order_by(Post.id)
        )
    )


def picture_in(group: Group, image_id: int) -> PostImage | None:
    image = db.session.get(PostImage, image_id)
    if image is None or image.institution_id != group.institution_id:
        return None
    post = db.session.get(Post, image.post_id)
    return image if post is not None and post.group_id == group.id else None


def post_in(group: Group, post_id: int) -> Post | None:
    post = db.session.get(Post, post_id)
    return post if post is not None and post.group_id == group.id else None


def moderation_log(group: Group, limit: int = 100) -> list[ModerationAction]:
    return list(
        db.session.scalars(
            select(ModerationAction)
            .where(ModerationAction.group_id == group.id)
            .order_by(ModerationAction.id.desc())
            .limit(limit)
        )
    )


def due_announcements(now: datetime) -> list[tuple[int, int]]:
    """(institution id, post id) of every announcement due and not yet sent to its members
    (the sweeper's query, across institutions)."""
    rows = db.session.execute(
        select(Post.institution_id, Post.id).where(
            Post.kind == PostKind.ANNOUNCEMENT,
            Post.status == PostStatus.PUBLISHED,
            Post.notified_at.is_(None),
            Post.publish_at <= now,
        )
    )
    return [tuple(row) for row in rows.all()]


def posts_awaiting_pictures() -> list[tuple[int, int]]:
    """(institution id, post id) of every held post whose pictures were not looked at yet
    (the sweeper's query, across institutions)."""
    rows = db.session.execute(
        select(Post.institution_id, Post.id).where(
            Post.status == PostStatus.HELD,
            Post.image_count > 0,
            Post.images_checked_at.is_(None),
        )
    )
    return [tuple(row) for row in rows.all()]


def read_counts(group: Group) -> dict[int, int]:
    """How many members have read each announcement of the group."""
    rows = db.session.execute(
        select(AnnouncementRead.post_id, func.count())
        .join(Post, Post.id == AnnouncementRead.post_id)
        .where(Post.group_id == group.id)
        .group_by(AnnouncementRead.post_id)
    )
    return dict(rows.all())


def readers(post: Post) -> list[str]:
    """The families who have read an announcement, by name."""
    return list(
        db.session.scalars(
            select(Contact.parent_name)
            .join(GroupMember, GroupMember.contact_id == Contact.id)
            .join(AnnouncementRead, AnnouncementRead.member_id == GroupMember.id)
            .where(AnnouncementRead.post_id == post.id)
            .order_by(AnnouncementRead.read_at)
        )
    )


def last_active(group: Group) -> dict[int, date]:
    """Each member's last day of activity in the group."""
    rows = db.session.execute(
        select(MemberActivity.member_id, func.max(MemberActivity.day))
        .where(MemberActivity.group_id == group.id)
        .group_by(MemberActivity.member_id)
    )
    return dict(rows.all())


def week_figures(institution, today: date) -> dict[int, tuple[int, int]]:
    """For each group of the institution: (members active in the last 7 days, posts and
    replies published in them)."""
    since = today - timedelta(days=6)
    active = dict(
        db.session.execute(
            select(MemberActivity.group_id, func.count(func.distinct(MemberActivity.member_id)))
            .where(MemberActivity.institution_id == institution.id, MemberActivity.day >= since)
            .group_by(MemberActivity.group_id)
        ).all()
    )
    posted = dict(
        db.session.execute(
            select(Post.group_id, func.count())
            .where(
                Post.institution_id == institution.id,
                Post.created_at >= utcnow() - timedelta(days=7),
                Post.status == PostStatus.PUBLISHED,
            )
            .group_by(Post.group_id)
        ).all()
    )
    groups = set(active) | set(posted)
    return {g: (active.get(g, 0), posted.get(g, 0)) for g in groups}


def reactions(posts: list[Post], member: GroupMember | None) -> tuple[dict[int, int], set[int]]:
    """The 👍 count of each post, and the posts the member gave one to."""
    ids = [post.id for post in posts]
    if not ids:
        return {}, set()
    counts = dict(
        db.session.execute(
            select(PostReaction.post_id, func.count())
            .where(PostReaction.post_id.in_(ids))
            .group_by(PostReaction.post_id)
        ).all()
    )
    mine = set()
    if member is not None:
        mine = set(
            db.session.scalars(
                select(PostReaction.post_id).where(
                    PostReaction.post_id.in_(ids), PostReaction.member_id == member.id
                )
            )
        )
    return counts, mine


def groups_to_close(now: datetime) -> list[tuple[int, int]]:
    """(institution id, group id) of every group whose time to close has come and whose
    farewell is not posted: past its closing time, or past its course's last lesson by
    its number of days (the sweeper's query, across institutions)."""
    last_lesson = (
        select(func.max(Lesson.starts_at))
        .where(Lesson.course_id == Group.course_id, Lesson.institution_id == Group.institution_id)
        .scalar_subquery()
    )
    candidates = db.session.execute(
        select(
            Group.institution_id,
            Group.id,
            Group.closes_at,
            Group.close_days_after_last_lesson,
            last_lesson,
        ).where(
            Group.farewell_posted_at.is_(None),
            (Group.closes_at.is_not(None)) | (Group.close_days_after_last_lesson.is_not(None)),
        )
    ).all()
    due = []
    for institution_id, group_id, closes_at, days, last in candidates:
        by_lessons = last + timedelta(days=days) if last is not None and days is not None else None
        moments = [m for m in (closes_at, by_lessons) if m is not None]
        if moments and min(moments) <= now:
            due.append((institution_id, group_id))
    return due
