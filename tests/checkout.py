"""Paying in tests: test cards, the test's own view of localstripe, and the part of a
checkout that Stripe.js plays in the browser."""

from __future__ import annotations

import stripe
from flask import current_app

VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0341"  # accepted as a card, declined when charged


def stripe_client() -> stripe.StripeClient:
    """The test's own view of localstripe, to check what really happened there."""
    return stripe.StripeClient(
        current_app.config["STRIPE_SECRET_KEY"],
        base_addresses={"api": current_app.config["STRIPE_API_BASE"]},
    )


def intent(payment_intent_id: str):
    return stripe_client().v1.payment_intents.retrieve(payment_intent_id)


def captures_of(payment_intent_id: str) -> int:
    """How many times localstripe moved money for this PaymentIntent's charge: each capture
    writes one balance transaction, so a double capture would show as 2."""
    charge = intent(payment_intent_id).to_dict()["latest_charge"]
    charge_id = charge["id"] if isinstance(charge, dict) else charge
    transactions = stripe_client().v1.balance_transactions.list(params={"limit": 100})
    return sum(1 for txn in transactions.auto_paging_iter() if txn.to_dict()["source"] == charge_id)


def pay_like_stripe_js(payment_intent_id: str, number: str = VISA) -> dict:
    """What the Payment Element does in the parent's browser: attach the card to the
    PaymentIntent and confirm it at Stripe. (localstripe serves no Payment Element, so the
    test makes the same calls to it that Stripe.js would make.)"""
    client = stripe_client()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {
                "number": number.replace(" ", ""),
                "exp_month": 12,
                "exp_year": 2030,
                "cvc": "123",
            },
        }
    )
    client.v1.payment_intents.update(payment_intent_id, params={"payment_method": method.id})
    try:
        return client.v1.payment_intents.confirm(payment_intent_id).to_dict()
    except stripe.CardError:
        return intent(payment_intent_id).to_dict()
