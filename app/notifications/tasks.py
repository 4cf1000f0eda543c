"""Outbox jobs: delivering a message, and the sweeper that finds messages whose delivery
job was lost."""

from __future__ import annotations

from app.db import utcnow
from app.jobs import job, periodic, platform_job, redrive
from app.notifications import queries, services


@job(queue="notifications", timeout=60)
def deliver_message(institution, message_id: int) -> bool:
    """Deliver one of the institution's outbox messages if it is still due (idempotent)."""
    return services.deliver_message(institution.id, message_id)


@platform_job(queue="notifications", timeout=60)
def deliver_platform_message(message_id: int) -> bool:
    """Deliver a message that belongs to no institution (a password reset)."""
    return services.deliver_message(None, message_id)


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="notifications", timeout=300)
def sweep_outbox() -> int:
    """Re-enqueue every due message whose delivery job is lost (to a flush, a restart or a
    killed worker: app.jobs.job_is_alive). Returns how many it enqueued."""
    return sum(
        redrive(*services.delivery_job(message), job_id=message.job_id)
        for message in queries.due_messages(utcnow())
    )
