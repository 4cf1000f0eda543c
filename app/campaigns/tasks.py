"""Group-buy jobs: a team's deadline, its settlement, and the sweeper that finds either
when its job was lost."""

from __future__ import annotations

from sqlalchemy import select

from app.campaigns import services
from app.campaigns.models import Team
from app.db import utcnow
from app.extensions import db
from app.institutions.models import Institution
from app.jobs import enqueue, job, job_is_waiting, periodic
from app.tenancy import bind_institution


def _team(institution_id: int, team_id: int) -> tuple[Institution, Team] | tuple[None, None]:
    institution = db.session.get(Institution, institution_id)
    if institution is None:
        return None, None
    bind_institution(institution)
    team = db.session.scalar(select(Team).where(Team.id == team_id))
    return (institution, team) if team is not None else (None, None)


@job(queue="payments", timeout=120, retries=5)
def fail_team_job(institution_id: int, team_id: int) -> bool:
    """At a team's deadline: fail it if it is still short (idempotent)."""
    institution, team = _team(institution_id, team_id)
    return bool(team) and services.fail_team(institution, team)


@job(queue="payments", timeout=600, retries=5)
def settle_team_job(institution_id: int, team_id: int) -> bool:
    """Capture, enrol and tell every member of a team that filled (safe to run twice)."""
    institution, team = _team(institution_id, team_id)
    return bool(team) and services.settle_team(institution, team)


@periodic("SWEEP_INTERVAL_SECONDS")
@job(queue="payments", timeout=300)
def sweep_teams() -> int:
    """Enqueue the deadline of every team past it and the settlement of every filled team
    not yet settled, unless their job is already waiting; end campaigns past their end."""
    expired, unsettled = services.sweep(utcnow())
    enqueued = 0
    for fn, teams, prefix in (
        (fail_team_job, expired, "fail-team"),
        (settle_team_job, unsettled, "settle-team"),
    ):
        for team in teams:
            job_id = f"{prefix}-{team.id}"
            if not job_is_waiting(job_id):
                enqueue(fn, team.institution_id, team.id, job_id=job_id)
                enqueued += 1
    return enqueued
