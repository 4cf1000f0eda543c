"""Which ways of paying a PaymentIntent offers: with real Stripe, whatever the institution's
account has enabled (automatic payment methods: WeChat Pay and Alipay where available,
for payments taken at once); against localstripe, which refuses parameters it does not
know, cards exactly."""

from __future__ import annotations

import pytest
import stripe

from app.db import utcnow
from app.payments import gateway
from app.payments import services as payments
from app.payments.models import Payment
from app.tenancy import bound
from tests.helpers import intent, stripe_client


def a_payment(manual_capture: bool) -> Payment:
    return Payment(
        id=7,
        institution_id=3,
        purpose="group_buy",
        reference=11,
        amount=19900,
        currency="CNY",
        is_manual_capture=manual_capture,
        created_at=utcnow(),
    )


@pytest.mark.parametrize(("manual_capture", "capture"), [(True, "manual"), (False, "automatic")])
def test_real_stripe_is_asked_for_the_methods_the_account_has_enabled(manual_capture, capture):
    params = gateway.intent_params(a_payment(manual_capture), local=False)

    assert params["automatic_payment_methods"] == {"enabled": True}
    assert "payment_method_types" not in params
    assert params["capture_method"] == capture  # a hold: Stripe offers only what can hold
    assert (params["amount"], params["currency"]) == (19900, "cny")
    assert params["metadata"]["payment_id"] == "7"
    assert params["metadata"]["institution_id"] == "3"


def test_a_test_card_is_confirmed_at_once_whichever_stripe():
    for local in (True, False):
        params = gateway.intent_params(
            a_payment(False), local=local, payment_method="pm_1", customer="cus_1"
        )
        assert (params["payment_method"], params["customer"], params["confirm"]) == (
            "pm_1",
            "cus_1",
            True,
        )
        assert "automatic_payment_methods" not in params
        assert "payment_method_types" not in params


@pytest.mark.parametrize(("manual_capture", "capture"), [(True, "manual"), (False, "automatic")])
def test_localstripe_is_sent_only_what_it_knows(institution, manual_capture, capture):
    with bound(institution):
        payment = payments.start_payment(
            institution,
            purpose="test",
            reference=1,
            amount=19900,
            contact_id=None,
            manual_capture=manual_capture,
        )
        made = gateway.create_intent(payment)  # localstripe refuses a parameter it lacks

    params = gateway.intent_params(payment, local=True)
    assert params["payment_method_types"] == ["card"]
    assert "automatic_payment_methods" not in params
    read_back = intent(made["id"])
    assert read_back["capture_method"] == capture
    assert read_back["status"] == "requires_payment_method"  # for the Payment Element
    assert read_back["metadata"]["payment_id"] == str(payment.id)
    # What real Stripe is sent would be refused there: the two branches must stay apart.
    with pytest.raises(stripe.InvalidRequestError):
        stripe_client().v1.payment_intents.create(
            params=gateway.intent_params(payment, local=False)
        )
