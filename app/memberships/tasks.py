"""VIP membership jobs: the reminder before a membership ends, leaving the VIP clubs when
it has, and the sweeper that finds both in the database (no timer is kept anywhere else:
a Redis flush or a stopped worker loses nothing, and each job does its part once)."""

from __future__ import annotations

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.jobs import job, periodic, platform_job, redrive
from app.memberships import queries, services
from app.memberships.models import VipMembership


def _membership(institution, membership_id: int) -> VipMembership | None:
    return db.session.scalar(
        select(VipMembership).where(
            VipMembership.id == membership_id, VipMembership.institution_id == institution.id
        )
    )


@job(queue="notifications", timeout=120, retries=3)
def warn_membership(institution, membership_id: int) -> bool:
    """Tell the family its membership ends soon, once (safe to run twice)."""
    membership = _membership(institution, membership_id)
    return membership is not None and services.warn_membership(institution, membership)


@job(queue="default", timeout=120, retries=3)
def lapse_membership(institution, membership_id: int) -> int:
    """Take the family out of the VIP clubs when its membership has ended, once (safe to
    run twice)."""
    membership = _membership(institution, membership_id)
    return 0 if membership is None else services.lapse_membership(institution, membership)


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="default", timeout=300)
def sweep_memberships() -> int:
    """Enqueue, unless its job is on its way, every membership reminder that is due and not
    sent, and every membership that has ended and whose end was not dealt with."""
    now = utcnow()
    warnings = sum(
        redrive(warn_membership, institution_id, membership_id, job_id=f"vip-warn-{membership_id}")
        for institution_id, membership_id in queries.due_warnings(now)
    )
    lapses = sum(
        redrive(
            lapse_membership, institution_id, membership_id, job_id=f"vip-lapse-{membership_id}"
        )
        for institution_id, membership_id in queries.due_lapses(now)
    )
    return warnings + lapses
