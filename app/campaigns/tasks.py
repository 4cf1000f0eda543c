"""Campaign jobs: a team's deadline, its settlement, a flash sale's queued orders, a flash
order's deadline, and the sweepers that find any of them whose job was lost."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.campaigns import queries, services, stock
from app.campaigns.models import FlashOrder, Team
from app.db import utcnow
from app.extensions import db
from app.jobs import job, periodic, platform_job, redrive


def _team(institution, team_id: int) -> Team | None:
    return db.session.scalar(
        select(Team).where(Team.id == team_id, Team.institution_id == institution.id)
    )


@job(queue="payments", timeout=120, retries=5)
def fail_team(institution, team_id: int) -> bool:
    """At a team's deadline: fail it if it is still short (idempotent)."""
    team = _team(institution, team_id)
    return team is not None and services.fail_team(institution, team)


@job(queue="payments", timeout=600, retries=5)
def settle_team(institution, team_id: int) -> bool:
    """Capture, enrol and tell every member of a team that filled (safe to run twice)."""
    team = _team(institution, team_id)
    return team is not None and services.settle_team(institution, team)


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="payments", timeout=300)
def sweep_teams() -> int:
    """Enqueue the deadline of every team past it and the settlement of every filled team
    not yet settled, unless their job is on its way (a lost job is: app.jobs.job_is_alive);
    end campaigns past their end."""
    now = utcnow()
    services.end_campaigns_past_their_end(now)
    enqueued = 0
    for fn, teams, prefix in (
        (fail_team, queries.teams_past_deadline(now), "fail-team"),
        (settle_team, queries.teams_not_settled(), "settle-team"),
    ):
        for team in teams:
            enqueued += redrive(fn, team.institution_id, team.id, job_id=f"{prefix}-{team.id}")
    return enqueued


@job(queue="payments", timeout=120, retries=5)
def expire_flash_order(institution, order_id: int) -> bool:
    """At a flash order's deadline: expire it if still unpaid, and its seat goes back
    (idempotent)."""
    order = db.session.scalar(
        select(FlashOrder).where(
            FlashOrder.id == order_id, FlashOrder.institution_id == institution.id
        )
    )
    return order is not None and services.expire_flash_order(institution, order)


@job(queue="payments", timeout=600, retries=5, in_process=True)
def write_flash_orders(institution, sale_id: int) -> int:
    """Write a flash sale's orders queued in Redis by the winning attempts (woken by the
    first of them; safe to run twice: one writer a sale at a time)."""
    return services.write_flash_orders(institution, sale_id)


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="payments", timeout=300)
def sweep_flash_orders() -> int:
    """Enqueue the deadline of every flash order past it and still unpaid, and a writer
    for every sale with orders queued in Redis, unless their job is on its way."""
    now = utcnow()
    enqueued = sum(
        redrive(expire_flash_order, institution_id, order_id, job_id=f"flash-order-{order_id}")
        for institution_id, order_id in queries.flash_orders_past_deadline(now)
    )
    for institution_id, sale_id in queries.flash_sales_selling_since(now - timedelta(days=1), now):
        # (a writer holding the sale's lock is on its way, whatever RQ says: it runs in
        # the worker's own process, which does not beat while it runs)
        if stock.queue_length(sale_id) and not stock.being_written(sale_id):
            enqueued += redrive(
                write_flash_orders,
                institution_id,
                sale_id,
                job_id=services.writer_job_id(sale_id),
            )
    return enqueued
