"""The parent's checkout, the same for every domain that takes money.

A domain's view has its service write what is being bought together with a pending payment
(`services.start_payment`), then hands the payment to `commit_then_charge`. That is the one
place where a request commits before it calls Stripe: the rows exist before Stripe hears
of them, so a crash or a timeout in between leaves a pending payment that its deadline job
finishes (`services.reconcile`), never money held for rows nobody wrote.

If Stripe cannot be reached or does not answer in time, `gateway.Unavailable` reaches the
view with the payment failed (and what it held freed by its domain): the parent gets a 503
page saying that nothing was taken and to try again (app.payments.views).

Two ways to pay, chosen by STRIPE_CHECKOUT (see gateway.uses_test_card):
- the test card (localstripe): the card typed into the domain's own form is charged here;
- Stripe's Payment Element (real Stripe): the PaymentIntent is created here and the parent
  is sent to our checkout page, where Stripe.js confirms it; Stripe sends them back to our
  return page, which reads the payment back and goes on to the page they came from.
"""

from __future__ import annotations

from datetime import timedelta

from flask import url_for

from app import tokens
from app.errors import ServiceError
from app.extensions import db
from app.payments import gateway, queries, services
from app.payments.models import Payment, PaymentStatus

CHECKOUT_LINK_AGE = timedelta(days=1)


def collects_card() -> bool:
    """Whether our own forms ask for the (test) card: only against localstripe."""
    return gateway.uses_test_card()


def prepare(form):
    """A form with `app.forms.CardFields`, without them when Stripe.js collects the card."""
    if not collects_card():
        form.drop_card_fields()
    return form


def commit_then_charge(
    payment: Payment, *, card, title: str, next_path: str, note: str | None = None
) -> str | None:
    """Commit the pending payment (and whatever the caller wrote with it), then pay it.

    Returns None when the test card was charged here: the payment's domain has already
    been told through its transition handler, so the caller reads the outcome from its own
    rows. Otherwise returns the checkout page to send the parent to; Stripe brings them
    back to `next_path` (a path of this site) through our return page. `note` is a line
    the checkout page shows above the payment form (what happens to the money next).
    """
    db.session.commit()
    try:
        if collects_card():
            services.pay(payment, card)
        else:
            services.begin(payment)
    except gateway.Unavailable as error:
        db.session.rollback()
        status = services.settle_unreachable(payment, f"checkout: {error}")
        db.session.commit()
        if status == PaymentStatus.FAILED:
            # Nothing was taken (any hold made is cancelled by then or later, see
            # services.settle_unreachable) and the family can try again at once.
            raise
    db.session.commit()
    if collects_card() or not payment.is_pending:
        return None
    return checkout_url(payment, title, next_path, note)


def checkout_url(payment: Payment, title: str, next_path: str, note: str | None = None) -> str:
    """The checkout page of a payment begun for the Payment Element (valid for a day)."""
    data = {"payment": payment.id, "title": title, "next": next_path}
    if note:
        data["note"] = str(note)
    token = tokens.sign("checkout", data)
    return url_for("payments_public.checkout_page", token=token)


def resume_url(payment: Payment | None, title: str, next_path: str) -> str | None:
    """The way back to a Payment Element checkout the parent left before paying, or None
    (paid, failed, or paid with the test card)."""
    if payment is None or collects_card() or not payment.intent_id or not payment.is_pending:
        return None
    return checkout_url(payment, title, next_path)


def open_checkout(institution, token: str) -> tuple[Payment, dict]:
    """The payment and details a checkout link names, if the link is genuine, unexpired
    and of this institution; ServiceError otherwise."""
    data = tokens.load("checkout", token, CHECKOUT_LINK_AGE)
    payment = queries.payment_of(institution, data.get("payment"))
    if payment is None:
        raise ServiceError(tokens.LINK_INVALID, code="link_invalid")
    return payment, data
