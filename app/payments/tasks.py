"""Payment jobs: applying webhook events, deadlines, and reconciliation with Stripe."""

from __future__ import annotations

from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.jobs import enqueue, job, job_is_waiting, periodic, platform_job
from app.payments import queries, services
from app.payments.models import StripeEvent


@job(queue="payments", timeout=60, retries=5)
def process_stripe_event(institution, event_row_id: int) -> None:
    """Apply one stored webhook event (idempotent: a processed event is skipped)."""
    event = db.session.scalar(
        select(StripeEvent)
        .where(StripeEvent.id == event_row_id, StripeEvent.institution_id == institution.id)
        .with_for_update()
    )
    if event is not None:
        services.process_event(event)


@job(queue="payments", timeout=60, retries=3)
def reconcile_payment(institution, payment_id: int) -> str | None:
    """Bring one payment in line with its PaymentIntent at Stripe; at its deadline, a
    payment still unpaid is cancelled (it is enqueued for `pay_by` when it starts)."""
    payment = queries.payment_of(institution, payment_id)
    if payment is None:
        return None
    return services.reconcile(payment, utcnow()).value


@job(queue="payments", timeout=60, retries=5)
def release_payment(institution, payment_id: int, cause: str) -> str | None:
    """Cancel a hold that could not be cancelled at once (Stripe was unreachable)."""
    payment = queries.payment_of(institution, payment_id)
    if payment is None:
        return None
    return services.release(payment, cause).value


@periodic("RECONCILE_INTERVAL_SECONDS")
@platform_job(queue="payments", timeout=300)
def reconcile_payments() -> int:
    """Enqueue a reconciliation of every payment that is not final: webhooks can be late,
    repeated, out of order or missing (localstripe sends few and never retries), and a
    card hold can expire at Stripe without any event reaching us."""
    enqueued = 0
    for payment in queries.payments_to_reconcile(utcnow()):
        job_id = f"reconcile-payment-{payment.id}"
        if not job_is_waiting(job_id):
            enqueue(reconcile_payment, payment.institution_id, payment.id, job_id=job_id)
            enqueued += 1
    return enqueued
