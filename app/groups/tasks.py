"""Group jobs: an announcement sent to every member, and the sweeper that sends the ones
whose time came (scheduled) or whose job was lost."""

from __future__ import annotations

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.groups import queries, services
from app.groups.models import Post
from app.jobs import job, periodic, platform_job, redrive


@job(queue="notifications", timeout=300, retries=5)
def notify_announcement(institution, post_id: int) -> int:
    """Queue an announcement to every member once (safe to run twice)."""
    post = db.session.scalar(
        select(Post).where(Post.id == post_id, Post.institution_id == institution.id)
    )
    return 0 if post is None else services.notify_announcement(institution, post)


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="notifications", timeout=300)
def sweep_announcements() -> int:
    """Enqueue every announcement that is due and not yet sent, unless its job is on its
    way: scheduled ones at their time, and any whose job Redis lost."""
    return sum(
        redrive(notify_announcement, institution_id, post_id, job_id=f"announcement-{post_id}")
        for institution_id, post_id in queries.due_announcements(utcnow())
    )
