from __future__ import annotations

from app.db import utcnow
from app.jobs import enqueue, job, job_is_waiting, periodic
from app.notifications import queries, services


@job(queue="notifications", timeout=60)
def deliver_outbox_message(message_id: int) -> bool:
    """Deliver one outbox message if it is still due (idempotent)."""
    return services.deliver_message(message_id)


@periodic("SWEEP_INTERVAL_SECONDS")
@job(queue="notifications", timeout=300)
def sweep_outbox() -> int:
    """Re-enqueue every due message whose delivery job is not waiting in Redis (lost to a
    flush, a restart or a killed worker). Returns how many it enqueued."""
    enqueued = 0
    for message in queries.due_messages(utcnow()):
        if not job_is_waiting(message.job_id):
            enqueue(deliver_outbox_message, message.id, job_id=message.job_id)
            enqueued += 1
    return enqueued
