"""Read-only queries of payments."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from app.db import once_per_transaction
from app.extensions import db
from app.payments.models import Payment, PaymentStatus, StripeAccount


def account_of(institution_id: int) -> StripeAccount | None:
    """The institution's Stripe settings (read once per transaction: a join asks for them
    to start the payment and again to call Stripe)."""
    return once_per_transaction(
        db.session(),
        ("stripe_account", institution_id),
        lambda: db.session.scalar(
            select(StripeAccount)
            .where(StripeAccount.institution_id == institution_id)
            .execution_options(all_institutions=True)
        ),
    )


def payment_of(institution, payment_id: int) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(Payment.institution_id == institution.id, Payment.id == payment_id)
    )


def payment_by_intent(institution_id: int, intent_id: str | None) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(
            Payment.institution_id == institution_id, Payment.intent_id == intent_id
        )
    )


def payments_to_reconcile(now: datetime, settle_after_seconds: int = 60) -> list[Payment]:
    """Every institution's payments not final yet (pending or held) that have had a moment
    to settle on their own, and those failed while Stripe was out of reach (a hold may
    have been made for them)."""
    return list(
        db.session.scalars(
            select(Payment)
            .where(
                (
                    Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.AUTHORISED])
                    & (Payment.updated_at <= now - timedelta(seconds=settle_after_seconds))
                )
                | Payment.stripe_check_pending.is_(True)
            )
            .order_by(Payment.institution_id, Payment.id)
            .execution_options(all_institutions=True)
        )
    )


def overdue_payments(now: datetime) -> list[Payment]:
    """Every institution's payments still pending after their deadline (their deadline
    job was lost)."""
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.status == PaymentStatus.PENDING, Payment.pay_by <= now)
            .order_by(Payment.pay_by)
            .execution_options(all_institutions=True)
        )
    )


FAMILY_SEES = (
    PaymentStatus.PENDING,
    PaymentStatus.AUTHORISED,
    PaymentStatus.CAPTURED,
    PaymentStatus.REFUNDED,
)


def family_payments(contact_id: int, limit: int = 20, shown=FAMILY_SEES) -> list[Payment]:
    """A family's payments, newest first: by default those that came to something (their
    page's receipts); staff see every one (`shown=tuple(PaymentStatus)`)."""
    return list(
        db.session.scalars(
            select(Payment)
            .where(Payment.contact_id == contact_id, Payment.status.in_(shown))
            .order_by(Payment.created_at.desc(), Payment.id.desc())
            .limit(limit)
        )
    )


def family_payment(contact_id: int, payment_id: int) -> Payment | None:
    return db.session.scalar(
        select(Payment).where(Payment.id == payment_id, Payment.contact_id == contact_id)
    )
