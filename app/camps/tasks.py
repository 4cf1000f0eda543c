"""Camp jobs: the evening nudge to each child who has not checked in today."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from app.camps import queries, services
from app.camps.models import Camp
from app.db import utcnow
from app.extensions import db, redis_connection
from app.jobs import job, periodic, platform_job, redrive

NUDGED_SECONDS = 2 * 24 * 3600


def _nudged_key(camp_id: int, day: date) -> str:
    return f"camp-nudged:{camp_id}:{day.isoformat()}"


@job(queue="notifications", timeout=300, retries=3)
def nudge_camp(institution, camp_id: int, day: str) -> int:
    """Nudge each child of the camp who has not checked in on `day` (safe to run twice:
    the outbox keeps one message per camp, child and day)."""
    camp = db.session.scalar(
        select(Camp).where(Camp.id == camp_id, Camp.institution_id == institution.id)
    )
    if camp is None:
        return 0
    count = services.nudge(institution, camp, date.fromisoformat(day))
    db.session.commit()
    # Only spares the sweeper the work until tomorrow; without it (Redis flushed) the
    # next sweep runs the job again, which queues nothing new.
    redis_connection.client.set(_nudged_key(camp_id, date.fromisoformat(day)), 1, ex=NUDGED_SECONDS)
    return count


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="notifications", timeout=300)
def sweep_camps() -> int:
    """Enqueue the nudges of every camp whose nudge time has come today (in its
    institution's time zone) while its window is open, unless done already today."""
    client = redis_connection.client
    return sum(
        redrive(
            nudge_camp,
            institution_id,
            camp_id,
            day.isoformat(),
            job_id=f"camp-nudge-{camp_id}-{day.isoformat()}",
        )
        for institution_id, camp_id, day in queries.due_camps(utcnow())
        if not client.exists(_nudged_key(camp_id, day))
    )
