"""Payments: the state machine of a payment, its PaymentIntent at Stripe, webhooks and
reconciliation.

Our state changes only through `transition()`, under a lock on the payment's row, and
only along the edges in `models.TRANSITIONS`; a change that is not allowed (a repeated
event, an old event arriving late) is ignored. Whatever tells us about a payment (the
checkout's own answer, a webhook, the reconciliation job) reads the PaymentIntent back
from Stripe and applies its state, so the order in which the news arrives does not matter.

A payment belongs to a domain (`purpose`): that domain registers a handler with
`@on_transition(purpose)` and is told of every transition, in the same transaction.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import stripe
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import transaction_memo, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.jobs import enqueue_after_commit
from app.payments import gateway, queries
from app.payments.models import (
    Payment,
    PaymentStatus,
    PaymentTransition,
    StripeAccount,
    StripeEvent,
)

log = logging.getLogger(__name__)

Handler = Callable[[Payment, PaymentStatus, str], None]
HANDLERS: dict[str, Handler] = {}


def on_transition(purpose: str):
    """Register the function told of every transition of payments for `purpose`, called as
    handler(payment, previous_status, cause) after the change is flushed."""

    def decorator(fn: Handler) -> Handler:
        HANDLERS[purpose] = fn
        return fn

    return decorator


# --- settings --------------------------------------------------------------------------------


def accepts_payments(institution_id: int) -> bool:
    """Whether the institution can take money online (it has a Stripe account to charge)."""
    return gateway.is_configured(institution_id)


def pay_window() -> timedelta:
    """How long a family has to pay once a payment is started (PAYMENT_PENDING_MINUTES)."""
    return current_app.config["PAYMENT_PENDING_TIMEOUT"]


def save_account(institution, **values) -> StripeAccount:
    """Store the institution's Stripe settings. A secret left empty keeps the stored one
    (secrets are never shown again, so the form cannot send them back)."""
    account = queries.account_of(institution.id)
    if account is None:
        account = StripeAccount(institution_id=institution.id)
        db.session.add(account)
        transaction_memo(db.session())[("stripe_account", institution.id)] = account
    for name in ("secret_key", "webhook_secret"):
        if values.get(name):
            setattr(account, name, values[name])
    account.publishable_key = values.get("publishable_key") or None
    account.connected_account_id = values.get("connected_account_id") or None
    if account.connected_account_id:
        account.secret_key = None  # one or the other: the connected account is charged
    db.session.flush()
    return account


# --- the state machine -----------------------------------------------------------------------


def start_payment(
    institution,
    *,
    purpose: str,
    reference: int,
    amount: int,
    contact_id: int | None,
    manual_capture: bool,
    pay_by: datetime | None = None,
) -> Payment:
    """A pending payment row, to be paid by `pay_by` (default `pay_window()` from now). The
    caller commits it
    before Stripe is called (payments.checkout), so that a crash between the two leaves a
    row that its deadline job finishes: at `pay_by` the payment is read back from Stripe
    and, still unpaid, cancelled there and failed here (its domain frees what it held)."""
    if not accepts_payments(institution.id):
        raise ServiceError(_l("Online payment is not available yet."), code="payments_off")
    now = utcnow()
    payment = Payment(
        institution_id=institution.id,
        purpose=purpose,
        reference=reference,
        contact_id=contact_id,
        amount=amount,
        currency=institution.currency,
        is_manual_capture=manual_capture,
        created_at=now,
        pay_by=pay_by or now + pay_window(),
    )
    db.session.add(payment)
    db.session.flush()
    enqueue_after_commit(
        "payments.reconcile_payment",
        institution.id,
        payment.id,
        job_id=f"payment-deadline-{payment.id}",
        at=payment.pay_by,
    )
    return payment


def _locked(payment_id: int) -> Payment:
    return db.session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True, all_institutions=True)
    )


def transition(payment: Payment, status: PaymentStatus, cause: str) -> bool:
    """Move the payment to `status` if the state machine allows it from where it is now
    (read under a row lock); record it and tell the payment's domain. Returns whether it
    moved."""
    payment = _locked(payment.id)
    previous = payment.status
    if not payment.can_become(status):
        if previous != status:
            log.info("payment %s: %s -> %s refused (%s)", payment.id, previous, status, cause)
        return False
    now = utcnow()
    payment.status = status
    if status == PaymentStatus.AUTHORISED:
        payment.authorised_at = now
    elif status == PaymentStatus.CAPTURED:
        payment.captured_at = now
        payment.authorised_at = payment.authorised_at or now
    elif status == PaymentStatus.RELEASED:
        payment.released_at = now
    db.session.add(
        PaymentTransition(
            institution_id=payment.institution_id,
            payment_id=payment.id,
            from_status=previous,
            to_status=status,
            cause=cause[:200],
        )
    )
    db.session.flush()
    log.info("payment %s: %s -> %s (%s)", payment.id, previous, status, cause)
    handler = HANDLERS.get(payment.purpose)
    if handler is not None:
        handler(payment, previous, cause)
    return True


def _fail(payment: Payment, message: str, cause: str, code: str | None = None) -> None:
    payment.failure_message = message[:500]
    payment.failure_code = code
    transition(payment, PaymentStatus.FAILED, cause)


def apply_intent(payment: Payment, intent, cause: str) -> PaymentStatus:
    """Bring the payment to the state of its PaymentIntent as Stripe reports it now."""
    intent = intent.to_dict() if hasattr(intent, "to_dict") else intent
    status = intent["status"]
    if status == "requires_capture":
        transition(payment, PaymentStatus.AUTHORISED, cause)
    elif status == "succeeded":
        transition(payment, PaymentStatus.CAPTURED, cause)
    elif status == "canceled":
        if payment.status == PaymentStatus.PENDING:
            _fail(payment, "cancelled before it was paid", cause, "abandoned")
        else:  # a hold cancelled by us, by staff at Stripe, or expired there
            transition(payment, PaymentStatus.RELEASED, cause)
    elif status == "requires_payment_method" and intent.get("last_payment_error"):
        error = intent["last_payment_error"]
        code = error.get("decline_code") or error.get("code") or "card_declined"
        _fail(payment, error.get("message") or "declined", cause, code)
    return payment.status


def _adopt(payment: Payment, intent, cause: str) -> PaymentStatus:
    payment.intent_id = intent["id"]
    db.session.flush()
    return apply_intent(payment, intent, cause)


def pay(payment: Payment, card: tuple[str, int, int, str]) -> Payment:
    """Pay with a card typed into the test card form (number, month, year, CVC): create
    its PaymentMethod, then create and confirm the PaymentIntent, and apply the answer. A
    declined card fails the payment and nothing else; Stripe out of reach raises
    gateway.Unavailable (see checkout and `settle_unreachable`)."""
    try:
        method, customer = gateway.create_test_card(payment.institution_id, card)
        intent = gateway.create_intent(payment, method, customer)
    except gateway.Declined as declined:
        log.info(
            "payment %s declined (%s/%s): %s",
            payment.id,
            declined.code,
            declined.decline_code,
            declined.message,
        )
        _fail(payment, declined.message, "card declined", declined.decline_code or declined.code)
        return payment
    _adopt(payment, intent, "checkout")
    return payment


def begin(payment: Payment) -> Payment:
    """Create the PaymentIntent for Stripe's Payment Element to confirm in the browser (the
    parent comes back to our return page, which reads it back; so do the webhook and the
    reconciliation). Safe to call again: the intent is created once."""
    if payment.intent_id is None:
        intent = gateway.create_intent(payment)
        payment.intent_id = intent["id"]
        db.session.flush()
    return payment


def settle_unreachable(payment: Payment, cause: str) -> PaymentStatus:
    """Stripe failed us in the middle of a checkout (a refused connection, a timeout, a
    5xx): we do not know whether it made a PaymentIntent. Ask it which it made; if one
    went through, the payment goes on with it (the others are cancelled). If Stripe
    answers that none did, the payment fails. If Stripe cannot even answer, the payment
    fails all the same, so that the family can try again at once, and it is marked to be
    checked: reconciliation asks again until Stripe answers, and cancels any hold (refunds
    any charge) made for it. Either way nothing stays held for a payment we call failed."""
    payment = _locked(payment.id)
    if payment.status != PaymentStatus.PENDING:
        return payment.status
    try:
        intents = gateway.find_intents(payment)
    except gateway.Unavailable:
        payment.stripe_check_pending = True
        _fail(payment, "Stripe could not be reached", f"{cause}; to be checked", "unavailable")
        return payment.status
    return _apply_found(payment, intents, cause)


def _apply_found(payment: Payment, intents: list, cause: str) -> PaymentStatus:
    """Go on with the intent made for this pending payment that is still alive (the
    newest), undo any other; with none, the payment fails."""
    alive = [i for i in intents if i["status"] not in ("canceled", "requires_payment_method")]
    keep = alive[0] if alive else None
    for intent in intents:
        if intent is not keep:
            _undo(payment, intent)
    payment.stripe_check_pending = False
    if keep is not None:
        return _adopt(payment, keep, f"{cause}; found at Stripe")
    declined = next((i for i in intents if i.get("last_payment_error")), None)
    if declined is not None:
        return _adopt(payment, declined, f"{cause}; found at Stripe")
    _fail(payment, "Stripe made no payment", cause, "unavailable")
    return payment.status


def _undo(payment: Payment, intent) -> None:
    """Cancel an intent we will not use (a stray hold), or refund it if it was charged."""
    status = intent["status"]
    if status == "succeeded":
        gateway.refund_intent(payment, intent["id"])
        log.warning("payment %s: refunded stray intent %s", payment.id, intent["id"])
    elif status != "canceled":
        gateway.cancel_intent(payment, intent["id"])
        log.warning("payment %s: cancelled stray intent %s", payment.id, intent["id"])


def check_strays(payment: Payment) -> None:
    """For a payment failed while Stripe could not be reached: cancel (or refund) every
    intent Stripe made for it. Raises gateway.Unavailable while Stripe still cannot be
    reached (reconciliation asks again)."""
    payment = _locked(payment.id)
    if not payment.stripe_check_pending:
        return
    for intent in gateway.find_intents(payment):
        _undo(payment, intent)
    payment.stripe_check_pending = False
    db.session.flush()


def _forgotten(payment: Payment, cause: str) -> PaymentStatus:
    """Stripe does not know the payment's intent (a localstripe restarted without its
    store): what it held is gone with it, so the payment ends, with a line in the log."""
    log.warning(
        "payment %s: Stripe does not know intent %s; ending it as %s (%s)",
        payment.id,
        payment.intent_id,
        "failed" if payment.is_pending else "released",
        cause,
    )
    if payment.is_pending:
        _fail(payment, "unknown at Stripe", f"{cause}; unknown at Stripe", "unavailable")
    else:
        transition(payment, PaymentStatus.RELEASED, f"{cause}; unknown at Stripe")
    return payment.status


def client_secret(payment: Payment) -> str | None:
    """The secret Stripe.js confirms the payment with, while it can still be paid."""
    if payment.intent_id is None or payment.status != PaymentStatus.PENDING:
        return None
    intent = gateway.retrieve_intent(payment)
    if intent["status"] not in ("requires_payment_method", "requires_confirmation"):
        return None
    return intent["client_secret"]


def capture(payment: Payment, cause: str) -> PaymentStatus:
    """Take the held money. Safe to run twice, and after a crash: Stripe's own state is
    read first, so a hold that a killed worker already captured is recorded, not captured
    again. A capture Stripe refuses fails the payment (the hold may have expired). Raises
    gateway.Unavailable while Stripe cannot be reached (the job retries)."""
    payment = _locked(payment.id)
    if payment.status != PaymentStatus.AUTHORISED:
        return payment.status
    try:
        current = gateway.retrieve_intent(payment)
    except gateway.Forgotten:
        return _forgotten(payment, cause)
    if current["status"] != "requires_capture":
        return apply_intent(payment, current, f"{cause}; read back")
    try:
        intent = gateway.capture_intent(payment)
    except (gateway.Declined, stripe.InvalidRequestError) as error:
        current = gateway.retrieve_intent(payment)
        if current["status"] in ("succeeded", "canceled"):
            return apply_intent(payment, current, f"{cause}; read back after an error")
        _fail(payment, f"capture refused: {error}", cause, "capture_refused")
        return payment.status
    return apply_intent(payment, intent, cause)


def release(payment: Payment, cause: str) -> PaymentStatus:
    """Cancel the hold (or the unfinished payment): nothing is taken from the card. Safe to
    run twice. A payment whose create call never answered is looked up at Stripe first, so
    a hold made for it is cancelled too. Raises gateway.Unavailable if Stripe cannot be
    reached (callers retry)."""
    payment = _locked(payment.id)
    if payment.status not in (PaymentStatus.PENDING, PaymentStatus.AUTHORISED):
        return payment.status
    if payment.intent_id is None:
        for intent in gateway.find_intents(payment):
            _undo(payment, intent)
        _fail(payment, "abandoned before payment", cause, "abandoned")
        return payment.status
    try:
        intent = gateway.cancel_intent(payment)
    except gateway.Forgotten:
        return _forgotten(payment, cause)
    except stripe.InvalidRequestError:
        intent = gateway.retrieve_intent(payment)  # already cancelled or captured there
    return apply_intent(payment, intent, cause)


def refund(payment: Payment, cause: str) -> PaymentStatus:
    """Give captured money back in full (a payment that arrived for something no longer
    there, a team paid at once that did not fill). Safe to run twice, and after a crash:
    Stripe's refunds of the intent are read first, so a refund that a killed worker
    already made is recorded, not made again. Raises gateway.Unavailable while Stripe
    cannot be reached (the caller's job runs again)."""
    payment = _locked(payment.id)
    if payment.status != PaymentStatus.CAPTURED:
        return payment.status
    try:
        if gateway.refunded_amount(payment) < payment.amount:
            gateway.refund_intent(payment)
        else:
            log.warning("payment %s: already refunded at Stripe; recorded (%s)", payment.id, cause)
    except gateway.Forgotten:
        # As for a hold (`_forgotten`): what Stripe took is gone with it; the cause says so.
        log.warning("payment %s: Stripe does not know intent %s", payment.id, payment.intent_id)
        cause = f"{cause}; unknown at Stripe"
    transition(payment, PaymentStatus.REFUNDED, cause)
    return payment.status


def sync(payment: Payment, cause: str) -> PaymentStatus:
    """Read the PaymentIntent back from Stripe and apply it; a payment whose create call
    never answered is looked up by our ids."""
    if payment.intent_id is None:
        if not payment.is_pending:
            return payment.status
        return _apply_found(payment, gateway.find_intents(payment), cause)
    try:
        return apply_intent(payment, gateway.retrieve_intent(payment), cause)
    except gateway.Forgotten:
        return _forgotten(payment, cause)


# --- webhooks and reconciliation -------------------------------------------------------------


def record_event(institution, payload: bytes, signature: str | None) -> StripeEvent | None:
    """Verify a webhook and store it once. Returns the new row, or None for a repeat;
    raises ValueError or stripe.SignatureVerificationError for one that is not genuine."""
    event = gateway.verify_event(institution.id, payload, signature)
    row = StripeEvent(
        institution_id=institution.id,
        event_id=event["id"],
        type=event["type"],
        payload=event.to_dict(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        return None
    return row


def process_event(event: StripeEvent) -> None:
    """Apply a stored event: find our payment and read its PaymentIntent back (the event's
    own copy may be older than what has happened since). Events about other objects, or
    another institution's payments, are marked processed and change nothing."""
    if event.processed_at is not None:
        return
    data = (event.payload.get("data") or {}).get("object") or {}
    if data.get("object") == "payment_intent":
        payment = queries.payment_by_intent(event.institution_id, data.get("id"))
        if payment is not None:
            sync(payment, f"webhook {event.type} {event.event_id}")
    event.processed_at = utcnow()
    db.session.flush()


def reconcile(payment: Payment, now: datetime) -> PaymentStatus:
    """Bring one payment in line with Stripe; a payment still unpaid at its deadline is
    cancelled there and failed here (its domain frees what it held); a payment failed
    while Stripe was out of reach has any hold made for it cancelled."""
    if payment.stripe_check_pending:
        check_strays(payment)
        return payment.status
    if payment.intent_id is None and not payment.is_overdue(now):
        return payment.status  # a checkout still on its way to Stripe: leave it be
    status = sync(payment, "reconciliation")
    if payment.is_overdue(now):
        return release(payment, "checkout timed out")
    return status
