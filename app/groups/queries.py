"""Reads of groups, members and feeds."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app.db import scoped_select
from app.extensions import db
from app.groups.models import (
    Group,
    GroupInvite,
    GroupMember,
    MemberStatus,
    ModerationAction,
    Post,
    PostImage,
    PostKind,
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


def invite_for_course(course, now: datetime) -> GroupInvite | None:
    """The invitation a family registering for the course is offered: the first usable
    one of the course's newest open group."""
    groups = db.session.scalars(
        select(Group)
        .where(Group.institution_id == course.institution_id, Group.course_id == course.id)
        .order_by(Group.id.desc())
    )
    for group in groups:
        if group.is_closed(now):
            continue
        for invite in invites(group):
            if invite.is_usable(now):
                return invite
    return None


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
