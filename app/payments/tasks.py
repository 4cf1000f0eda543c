"""Payment jobs: applying webhook events, deadlines, and reconciliation with Stripe."""

from __future__ import annotations

import logging
from itertools import groupby

from flask import current_app
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db
from app.jobs import job, periodic, platform_job, redrive
from app.payments import gateway, queries, services
from app.payments.models import StripeEvent

log = logging.getLogger(__name__)


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


@job(queue="reconcile", timeout=600)
def reconcile_batch(institution, payment_ids: list[int]) -> int:
    """Reconcile some of the institution's payments, one after the other; a payment
    Stripe cannot answer for now is left for the next round. Returns how many were read."""
    done = 0
    for payment_id in payment_ids:
        payment = queries.payment_of(institution, payment_id)
        if payment is None:
            continue
        try:
            services.reconcile(payment, utcnow())
        except gateway.Unavailable as error:
            log.warning("reconciliation of payment %s waits for Stripe: %s", payment_id, error)
            db.session.rollback()
            break
        db.session.commit()
        done += 1
    return done


@periodic("RECONCILE_INTERVAL_SECONDS")
@platform_job(queue="reconcile", timeout=300)
def reconcile_payments() -> int:
    """Enqueue the reconciliation of every payment that is not final, in batches of
    RECONCILE_BATCH per institution on the `reconcile` queue: webhooks can be late,
    repeated, out of order or missing (localstripe sends few and never retries), a card
    hold can expire at Stripe without any event reaching us, and a payment failed while
    Stripe was out of reach may have a hold to cancel."""
    size = current_app.config["RECONCILE_BATCH"]
    enqueued = 0
    payments = queries.payments_to_reconcile(utcnow())
    for institution_id, group in groupby(payments, key=lambda payment: payment.institution_id):
        ids = [payment.id for payment in group]
        for start in range(0, len(ids), size):
            batch = ids[start : start + size]
            job_id = f"reconcile-{institution_id}-{batch[0]}-{batch[-1]}"
            enqueued += redrive(reconcile_batch, institution_id, batch, job_id=job_id)
    return enqueued


@periodic("SWEEP_INTERVAL_SECONDS")
@platform_job(queue="payments", timeout=120)
def sweep_payment_deadlines() -> int:
    """Run again the deadline of every payment still unpaid after it whose deadline job
    was lost (its seats or place must not stay held)."""
    return sum(
        redrive(
            reconcile_payment,
            payment.institution_id,
            payment.id,
            job_id=f"payment-deadline-{payment.id}",
        )
        for payment in queries.overdue_payments(utcnow())
    )
