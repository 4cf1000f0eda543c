"""The thin Stripe client: the only module that talks to Stripe, through the official SDK.

Every call is made for one institution's account. Amounts are minor units; every call
that creates or moves money carries an idempotency key built from our own ids, and every
PaymentIntent carries the institution id, our payment id and when that payment was made in
its metadata.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import stripe
from flask import current_app

from app.payments.models import Payment
from app.payments.queries import account_of


class NotConfigured(Exception):
    """The institution has no Stripe account to charge through."""


class Unavailable(Exception):
    """Stripe could not be reached or did not answer in time, refused for now (rate
    limit), or failed on its side (5xx): nothing is known about what happened there."""


class Forgotten(Exception):
    """Stripe does not know the object (a localstripe restarted without its store, or an
    account switched): what it held is gone with it."""


class Declined(Exception):
    """The card said no; `message` is Stripe's explanation for the cardholder, `code` and
    `decline_code` say why (models.DECLINE_MESSAGES turns them into the parent's
    language; the message itself is for staff and the log)."""

    def __init__(self, message: str, code: str | None = None, decline_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.code = code
        self.decline_code = decline_code


@contextmanager
def _calling_stripe() -> Iterator[None]:
    """Stripe's failures as ours: a decline, an unknown object, or Stripe unavailable.
    Anything else (a bad request: our bug) propagates as it is."""
    try:
        yield
    except stripe.CardError as error:
        raise Declined(
            error.user_message or str(error), error.code, getattr(error, "decline_code", None)
        ) from error
    except (stripe.APIConnectionError, stripe.RateLimitError) as error:
        raise Unavailable(str(error)) from error
    except stripe.InvalidRequestError as error:
        if error.code == "resource_missing" or error.http_status == 404:
            raise Forgotten(str(error)) from error
        raise
    except stripe.StripeError as error:
        if error.http_status is None or error.http_status >= 500:
            raise Unavailable(str(error)) from error
        raise


CHECKOUTS = ("test_card", "payment_element")


def uses_test_card() -> bool:
    """How parents pay. True: a test card typed into our own form, confirmed from the server
    (localstripe, in development and tests, where Stripe.js cannot be loaded). False:
    Stripe's Payment Element confirms the PaymentIntent in the browser (real Stripe).
    STRIPE_CHECKOUT chooses; by default, the test card exactly against localstripe."""
    config = current_app.config
    checkout = config["STRIPE_CHECKOUT"] or (
        "test_card" if config["STRIPE_API_BASE"] else "payment_element"
    )
    if checkout not in CHECKOUTS:
        raise RuntimeError(f"STRIPE_CHECKOUT must be one of {CHECKOUTS}, not {checkout!r}")
    return checkout == "test_card"


def is_local() -> bool:
    """True against localstripe rather than Stripe itself."""
    return bool(current_app.config["STRIPE_API_BASE"])


def is_configured(institution_id: int) -> bool:
    try:
        _client(institution_id)
    except NotConfigured:
        return False
    return True


def browser_keys(institution_id: int) -> tuple[str, str | None]:
    """What Stripe.js is started with: the publishable key, and the connected account it
    acts for (None for an institution with its own keys)."""
    account = account_of(institution_id)
    if account and account.publishable_key and not account.is_connected:
        return account.publishable_key, None
    connected = account.connected_account_id if account else None
    return current_app.config["STRIPE_PUBLISHABLE_KEY"], connected


def _client(institution_id: int) -> stripe.StripeClient:
    config = current_app.config
    account = account_of(institution_id)
    # The SDK retries a failed call (with the same idempotency key, so real Stripe does it
    # once); a request waits at most timeout x (retries + 1) before we say so.
    options: dict = {"max_network_retries": config["STRIPE_NETWORK_RETRIES"]}
    if config["STRIPE_API_BASE"]:
        options["base_addresses"] = {"api": config["STRIPE_API_BASE"]}
    options["http_client"] = stripe.RequestsClient(timeout=config["STRIPE_TIMEOUT"])
    if account and account.secret_key:
        return stripe.StripeClient(account.secret_key, **options)
    platform_key = config["STRIPE_SECRET_KEY"]
    if account and account.connected_account_id and platform_key:
        return stripe.StripeClient(
            platform_key, stripe_account=account.connected_account_id, **options
        )
    if config["STRIPE_API_BASE"] and platform_key:  # localstripe: one shared fake account
        return stripe.StripeClient(platform_key, **options)
    raise NotConfigured(institution_id)


def _key(payment: Payment, action: str) -> str:
    return f"cohort-{payment.institution_id}-payment-{payment.id}-{_instant(payment)}-{action}"


def _metadata(payment: Payment) -> dict:
    return {
        "institution_id": str(payment.institution_id),
        "payment_id": str(payment.id),
        "payment_created": _instant(payment),
        "purpose": payment.purpose,
        "reference": str(payment.reference),
    }


def _instant(payment: Payment) -> str:
    """When the payment row was made, to the microsecond: with the ids, it names this row
    and no other, even where ids come round again (a database restored or reset, SQLite's
    reused row ids) while Stripe still holds the intents of the earlier rows."""
    return f"{payment.created_at.timestamp():.6f}"


def create_test_card(institution_id: int, card: tuple[str, int, int, str]) -> tuple[str, str]:
    """A PaymentMethod from a test card typed into our own form, attached to a new
    Customer as Stripe.js would have done, so that the test cards Stripe documents as
    declined are declined (localstripe declines most of them only when attaching); returns
    (payment method id, customer id). Test mode only: real card numbers never reach our
    servers, Stripe.js collects them in production."""
    if not is_local():
        raise RuntimeError("card numbers are only accepted against localstripe")
    number, exp_month, exp_year, cvc = card
    client = _client(institution_id)
    with _calling_stripe():
        try:
            method = client.v1.payment_methods.create(
                params={
                    "type": "card",
                    "card": {
                        "number": number,
                        "exp_month": exp_month,
                        "exp_year": exp_year,
                        "cvc": cvc,
                    },
                }
            )
        except stripe.InvalidRequestError as error:
            raise Declined("The card details are not valid.", "invalid_card") from error
        customer = client.v1.customers.create()
        client.v1.payment_methods.attach(method.id, params={"customer": customer.id})
    return method.id, customer.id


def intent_params(
    payment: Payment,
    *,
    local: bool,
    payment_method: str | None = None,
    customer: str | None = None,
) -> dict:
    """What the payment's PaymentIntent is created with (`local`: against localstripe).

    With a test card's PaymentMethod it is confirmed at once. Without one it waits for the
    Payment Element: real Stripe is asked for `automatic_payment_methods`, so the element
    offers what the institution's account has enabled and what fits the intent (its
    currency, and its capture: WeChat Pay and Alipay cannot hold money, so they are offered
    for a payment taken at once, never for a hold). localstripe refuses parameters it does
    not know and has only cards, so it is told exactly that."""
    params: dict = {
        "amount": payment.amount,
        "currency": payment.currency.lower(),
        "capture_method": "manual" if payment.is_manual_capture else "automatic",
        "metadata": _metadata(payment),
    }
    if payment_method:
        params["payment_method"] = payment_method
        params["confirm"] = True
        if customer:
            params["customer"] = customer
    elif local:
        params["payment_method_types"] = ["card"]
    else:
        params["automatic_payment_methods"] = {"enabled": True}
    return params


def create_intent(payment: Payment, payment_method: str | None = None, customer: str | None = None):
    """Create the payment's PaymentIntent (`intent_params`)."""
    params = intent_params(
        payment, local=is_local(), payment_method=payment_method, customer=customer
    )
    with _calling_stripe():
        return _client(payment.institution_id).v1.payment_intents.create(
            params=params, options={"idempotency_key": _key(payment, "create")}
        )


def find_intents(payment: Payment) -> list:
    """Every PaymentIntent at Stripe made for this payment (by our ids in its metadata),
    newest first: how a payment whose create call timed out learns what Stripe did. A
    retried create can have made more than one against localstripe, which ignores
    idempotency keys. The list API is used, not Search, which answers late."""
    params: dict = {"limit": 100}
    if not is_local():  # localstripe's list takes no filter
        params["created"] = {"gte": int(payment.created_at.timestamp()) - 300}
    found = []
    with _calling_stripe():
        page = _client(payment.institution_id).v1.payment_intents.list(params=params)
        for intent in page.auto_paging_iter():
            metadata = intent.to_dict().get("metadata") or {}
            if (
                metadata.get("payment_id") == str(payment.id)
                and metadata.get("institution_id") == str(payment.institution_id)
                # Intents made before the instant was recorded carry the ids alone.
                and metadata.get("payment_created", _instant(payment)) == _instant(payment)
            ):
                found.append(intent)
    return sorted(found, key=lambda intent: intent["created"], reverse=True)


def retrieve_intent(payment: Payment, intent_id: str | None = None):
    with _calling_stripe():
        return _client(payment.institution_id).v1.payment_intents.retrieve(
            intent_id or payment.intent_id
        )


def capture_intent(payment: Payment):
    with _calling_stripe():
        return _client(payment.institution_id).v1.payment_intents.capture(
            payment.intent_id, options={"idempotency_key": _key(payment, "capture")}
        )


def cancel_intent(payment: Payment, intent_id: str | None = None):
    intent_id = intent_id or payment.intent_id
    with _calling_stripe():
        return _client(payment.institution_id).v1.payment_intents.cancel(
            intent_id, options={"idempotency_key": _key(payment, f"cancel-{intent_id}")}
        )


def refund_intent(payment: Payment, intent_id: str | None = None):
    intent_id = intent_id or payment.intent_id
    with _calling_stripe():
        return _client(payment.institution_id).v1.refunds.create(
            params={"payment_intent": intent_id, "metadata": _metadata(payment)},
            options={"idempotency_key": _key(payment, f"refund-{intent_id}")},
        )


def refunded_amount(payment: Payment, intent_id: str | None = None) -> int:
    """How much Stripe has refunded (or is refunding) of the intent's charge, whoever
    asked: what a refund retried after a crash reads first, so that it is not made
    twice (localstripe ignores idempotency keys)."""
    intent_id = intent_id or payment.intent_id
    total = 0
    with _calling_stripe():
        refunds = _client(payment.institution_id).v1.refunds.list(
            params={"payment_intent": intent_id, "limit": 100}
        )
        for refund in refunds.auto_paging_iter():
            if refund["status"] not in ("failed", "canceled"):
                total += refund["amount"]
    return total


def verify_event(institution_id: int, payload: bytes, signature: str | None) -> stripe.Event:
    """The event in `payload` if its signature is the institution's; raises
    stripe.SignatureVerificationError (or ValueError for a body that is not an event)."""
    account = account_of(institution_id)
    if account is None or not account.webhook_secret:
        raise stripe.SignatureVerificationError("no webhook secret is set", signature)
    return stripe.Webhook.construct_event(payload, signature, account.webhook_secret)
