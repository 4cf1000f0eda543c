from __future__ import annotations

import enum
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import JSON, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TenantScoped, parent_id, str_enum, utcnow

# Stripe releases an uncaptured card hold after about 7 days; we plan as if it were 6.
HOLD_LIFETIME = timedelta(days=6)


class StripeAccount(TenantScoped, Base):
    """An institution's Stripe account: its own keys, or a connected account of the
    platform's. Secrets are written once from the settings page and never shown again."""

    __tablename__ = "stripe_accounts"
    __table_args__ = (UniqueConstraint("institution_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    publishable_key: Mapped[str | None] = mapped_column(String(255))
    secret_key: Mapped[str | None] = mapped_column(String(255))
    connected_account_id: Mapped[str | None] = mapped_column(String(255))
    webhook_secret: Mapped[str | None] = mapped_column(String(255))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def is_connected(self) -> bool:
        return bool(self.connected_account_id)


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # created; the card has not answered yet
    AUTHORISED = "authorised"  # money held on the card (manual capture)
    CAPTURED = "captured"  # money taken
    RELEASED = "released"  # the hold was cancelled: nothing was taken
    REFUNDED = "refunded"
    FAILED = "failed"  # declined, abandoned or a capture that did not go through


# The state machine: from each state, where a payment may go. Anything else is refused,
# which is what makes repeated and out-of-order Stripe events harmless.
TRANSITIONS = {
    PaymentStatus.PENDING: {
        PaymentStatus.AUTHORISED,
        PaymentStatus.CAPTURED,
        PaymentStatus.RELEASED,
        PaymentStatus.FAILED,
    },
    PaymentStatus.AUTHORISED: {
        PaymentStatus.CAPTURED,
        PaymentStatus.RELEASED,
        PaymentStatus.FAILED,
    },
    PaymentStatus.CAPTURED: {PaymentStatus.REFUNDED},
    PaymentStatus.RELEASED: set(),
    PaymentStatus.REFUNDED: set(),
    PaymentStatus.FAILED: set(),
}
PAYMENT_STATUS_LABELS = {
    PaymentStatus.PENDING: _l("Pending"),
    PaymentStatus.AUTHORISED: _l("Held"),
    PaymentStatus.CAPTURED: _l("Paid"),
    PaymentStatus.RELEASED: _l("Released"),
    PaymentStatus.REFUNDED: _l("Refunded"),
    PaymentStatus.FAILED: _l("Failed"),
}


# What a parent is told when a payment fails, in the page's language, by Stripe's
# decline code (`decline_code`), its error code (`code`) or ours. Stripe's own message is
# English (and meant for developers as much as for cardholders): it is kept for staff in
# `Payment.failure_message` and the log, never shown to a parent. Lost, stolen and
# fraudulent cards read as a plain decline, as Stripe advises; any code not listed here
# reads as a plain decline too (`DECLINED`).
_SPENDING_LIMIT = _l(
    "The card has reached its spending limit. Please use another card or ask your bank."
)
_INCORRECT_NUMBER = _l("The card number is incorrect.")
_INCORRECT_CVC = _l("The card's security code (CVC) is incorrect.")
_EXPIRED = _l("The card has expired.")
_PROCESSING = _l("The card could not be processed. Please try again.")
_AUTHENTICATION = _l(
    "Your bank asks you to confirm this payment. Please try again and follow its steps."
)
_NOT_SUPPORTED = _l("This card cannot be used for this payment. Please use another card.")
DECLINE_MESSAGES = {
    "insufficient_funds": _l("The card has insufficient funds."),
    "expired_card": _EXPIRED,
    "invalid_expiry_month": _l("The card's expiry date is not valid."),
    "invalid_expiry_year": _l("The card's expiry date is not valid."),
    "incorrect_cvc": _INCORRECT_CVC,
    "invalid_cvc": _INCORRECT_CVC,
    "incorrect_number": _INCORRECT_NUMBER,
    "invalid_number": _INCORRECT_NUMBER,
    "invalid_card": _l("The card details are not valid."),
    "processing_error": _PROCESSING,
    "try_again_later": _PROCESSING,
    "reenter_transaction": _PROCESSING,
    "authentication_required": _AUTHENTICATION,
    "approve_with_id": _AUTHENTICATION,
    "payment_intent_authentication_failure": _l(
        "The payment was not confirmed with your bank. Please try again."
    ),
    "card_velocity_exceeded": _SPENDING_LIMIT,
    "withdrawal_count_limit_exceeded": _SPENDING_LIMIT,
    "card_not_supported": _NOT_SUPPORTED,
    "currency_not_supported": _NOT_SUPPORTED,
    "transaction_not_allowed": _NOT_SUPPORTED,
    # do_not_honor, generic_decline, card_declined, lost_card, stolen_card, fraudulent,
    # pickup_card, restricted_card...: DECLINED.
    "abandoned": _l("The payment was not completed in time."),
    "unavailable": _l("Payment is unavailable right now."),
    "capture_refused": _l("The payment could not be taken."),
}
DECLINED = _l("The card was declined. Please use another card or ask your bank.")


class Payment(TenantScoped, Base):
    """One attempt to take money from a family, mirrored from one Stripe PaymentIntent.

    `purpose` names the domain that asked for it (a group-buy member, a course
    registration) and `reference` its row; that domain is told of every transition.
    """

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("institution_id", "intent_id"),
        Index("ix_payments_status", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    purpose: Mapped[str] = mapped_column(String(32))
    reference: Mapped[int]
    contact_id: Mapped[int | None] = parent_id("contacts", index=True)
    amount: Mapped[int]  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    is_manual_capture: Mapped[bool] = mapped_column(default=False)
    status: Mapped[PaymentStatus] = mapped_column(
        str_enum(PaymentStatus), default=PaymentStatus.PENDING
    )
    intent_id: Mapped[str | None] = mapped_column(String(255))
    failure_message: Mapped[str | None] = mapped_column(Text)  # Stripe's words, for staff
    # Why it failed, as a code (a Stripe decline code, "unavailable"): what the parent is
    # told, in their language (DECLINE_MESSAGES).
    failure_code: Mapped[str | None] = mapped_column(String(40))
    # Failed while Stripe could not be reached: reconciliation still has to ask Stripe
    # whether it made an intent for it, and cancel any hold.
    stripe_check_pending: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Not paid by then, it is abandoned: a job at this instant (and reconciliation, should
    # the job be lost) cancels it, and its domain frees what it held.
    pay_by: Mapped[datetime]
    authorised_at: Mapped[datetime | None]
    captured_at: Mapped[datetime | None]
    released_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    transitions: Mapped[list[PaymentTransition]] = relationship(
        back_populates="payment",
        order_by="PaymentTransition.id",
        cascade="all, delete-orphan",
        foreign_keys="PaymentTransition.payment_id",
    )

    @property
    def hold_expires_at(self) -> datetime | None:
        if self.status != PaymentStatus.AUTHORISED or self.authorised_at is None:
            return None
        return self.authorised_at + HOLD_LIFETIME

    def can_become(self, status: PaymentStatus) -> bool:
        return status in TRANSITIONS[self.status]

    @property
    def is_pending(self) -> bool:
        return self.status == PaymentStatus.PENDING

    @property
    def failure_text(self):
        """Why the payment failed, for the parent, in the page's language."""
        return DECLINE_MESSAGES.get(self.failure_code or "", DECLINED)

    def is_overdue(self, now: datetime) -> bool:
        """Still unpaid after its deadline."""
        return self.status == PaymentStatus.PENDING and self.pay_by <= now


class PaymentTransition(TenantScoped, Base):
    """A payment's state change: when, from what, to what, and why."""

    __tablename__ = "payment_transitions"

    id: Mapped[int] = mapped_column(primary_key=True)
    payment_id: Mapped[int] = parent_id("payments", ondelete="CASCADE", index=True)
    from_status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus))
    to_status: Mapped[PaymentStatus] = mapped_column(str_enum(PaymentStatus))
    cause: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    payment: Mapped[Payment] = relationship(back_populates="transitions", foreign_keys=[payment_id])


class StripeEvent(TenantScoped, Base):
    """A webhook event as Stripe sent it, stored once per institution and event id."""

    __tablename__ = "stripe_events"
    __table_args__ = (UniqueConstraint("institution_id", "event_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255))
    type: Mapped[str] = mapped_column(String(100))
    payload: Mapped[dict] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
