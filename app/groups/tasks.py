"""Group jobs: an announcement sent to every member, a post's pictures looked at, and the
sweeper that runs either when its time came (a scheduled announcement) or its job was
lost."""

from __future__ import annotations

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.groups import queries, services
from app.groups.models import Group, Post
from app.jobs import job, periodic, platform_job, redrive


@job(queue="notifications", timeout=300, retries=5)
def notify_announcement(institution, post_id: int) -> int:
    """Queue an announcement to every member once (safe to run twice)."""
    post = db.session.scalar(
        select(Post).where(Post.id == post_id, Post.institution_id == institution.id)
    )
    return 0 if post is None else services.notify_announcement(institution, post)


@job(queue="default", timeout=300, retries=3)
def check_pictures(institution, post_id: int) -> None:
    """Look at a post's pictures for QR codes and decide the post (safe to run twice)."""
    post = db.session.scalar(
        select(Post).where(Post.id == post_id, Post.institution_id == institution.id)
    )
    if post is not None:
        services.check_pictures(institution, post)


@job(queue="notifications", timeout=300, retries=3)
def close_group(institution, group_id: int) -> bool:
    """Close a group whose time has come and post its farewell (once)."""
    group = db.session.scalar(
        select(Group).where(Group.id == group_id, Group.institution_id == institution.id)
    )
    return group is not None and services.close_group(institution, group)


@job(queue="default", timeout=300)
def write_views(institution) -> int:
    """Record the group views gathered in Redis (activity and announcement reads); if
    that fails, they go back to Redis for the next run."""
    entries = services.take_views(institution)
    try:
        services.write_views(institution, entries)
        db.session.commit()
    except Exception:
        services.give_back_views(institution, entries)
        raise
    return len(entries)


@periodic("COUNTER_INTERVAL_SECONDS")
@platform_job(queue="default", timeout=120)
def sweep_views() -> int:
    """Enqueue the writing of every institution's gathered group views."""
    return sum(
        redrive(write_views, institution_id, job_id=f"group-views-{institution_id}")
        for institution_id in services.institutions_with_views()
    )


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="notifications", timeout=300)
def sweep_groups() -> int:
    """Enqueue, unless its job is on its way, every announcement that is due and not yet
    sent (scheduled ones at their time, and any whose job Redis lost), every post whose
    pictures wait to be looked at, and every group whose time to close has come."""
    now = utcnow()
    announcements = sum(
        redrive(notify_announcement, institution_id, post_id, job_id=f"announcement-{post_id}")
        for institution_id, post_id in queries.due_announcements(now)
    )
    pictures = sum(
        redrive(check_pictures, institution_id, post_id, job_id=f"pictures-{post_id}")
        for institution_id, post_id in queries.posts_awaiting_pictures()
    )
    closing = sum(
        redrive(close_group, institution_id, group_id, job_id=f"close-group-{group_id}")
        for institution_id, group_id in queries.groups_to_close(now)
    )
    return announcements + pictures + closing
