"""Stripe's documented test cards behave as Stripe says they do, and the parent is told
why in the page's language, never in Stripe's English."""

from __future__ import annotations

import re

import pytest
import stripe
from flask_babel import force_locale
from sqlalchemy import select

from app.courses.models import Seat, SeatStatus
from app.extensions import db
from app.payments import gateway
from app.payments.models import Payment, PaymentStatus
from tests.factories import make_course, make_group_buy
from tests.helpers import DECLINED, join_team, members, only_team, open_team, register

PRICE = 19900
DECLINED_WORDS = "The card was declined. Please use another card or ask your bank."
# https://docs.stripe.com/testing#declined-payments (localstripe declines the first seven
# when the card is attached to a customer, as Stripe.js does, and the last when charged).
DECLINED_CARDS = [
    "4000000000000002",  # generic decline
    "4000000000009995",  # insufficient funds
    "4000000000009987",  # lost card
    "4000000000009979",  # stolen card
    "4000000000000069",  # expired card
    "4000000000000127",  # incorrect CVC
    "4000000000000119",  # processing error
    "4000000000000341",  # attaches, then the charge fails
]


@pytest.mark.parametrize("number", DECLINED_CARDS)
def test_every_documented_declined_card_is_declined_and_frees_the_seat(client, institution, number):
    course = make_course(institution, price_amount=PRICE, capacity=1)
    card = {"card_number": number, "card_expiry": "12/30", "card_cvc": "123"}
    english = register(client, institution, course, **card)
    client.get("/lang/zh_CN")  # the parent switches the page to Chinese
    chinese = register(client, institution, course, phone="13900139000", **card)

    assert english.status_code == chinese.status_code == 422
    assert "The card was declined. Please use another card or ask your bank." in (
        english.get_data(as_text=True)
    )
    page = chinese.get_data(as_text=True)
    assert "支付未成功" in page and "declined" not in page.lower()
    payments = db.session.scalars(select(Payment)).all()
    assert [p.status for p in payments] == [PaymentStatus.FAILED] * 2
    assert all(s.status == SeatStatus.CANCELLED for s in db.session.scalars(select(Seat)))


@pytest.mark.parametrize(
    ("decline_code", "english"),
    [
        ("insufficient_funds", "The card has insufficient funds."),
        ("expired_card", "The card has expired."),
        ("incorrect_cvc", "The card's security code (CVC) is incorrect."),
        ("lost_card", "The card was declined. Please use another card or ask your bank."),
        (None, "The card was declined. Please use another card or ask your bank."),
    ],
)
def test_real_stripes_decline_codes_become_the_parents_words(decline_code, english):
    """Real Stripe says why (localstripe always says card_declined): each reason has its own
    words, a lost or stolen card reads as a plain decline, as Stripe advises."""
    error = stripe.CardError(
        "Your card was declined.", param=None, code="card_declined", http_status=402
    )
    error.decline_code = decline_code
    with pytest.raises(gateway.Declined) as caught, gateway._calling_stripe():
        raise error
    payment = Payment(failure_code=caught.value.decline_code or caught.value.code)
    with force_locale("en"):
        assert str(payment.failure_text) == english


@pytest.mark.parametrize(
    ("code", "english"),
    [
        ("card_declined", DECLINED_WORDS),
        ("generic_decline", DECLINED_WORDS),
        ("do_not_honor", DECLINED_WORDS),
        ("lost_card", DECLINED_WORDS),
        ("stolen_card", DECLINED_WORDS),
        ("fraudulent", DECLINED_WORDS),
        ("something_stripe_adds_one_day", DECLINED_WORDS),
        ("insufficient_funds", "The card has insufficient funds."),
        ("expired_card", "The card has expired."),
        ("incorrect_cvc", "The card's security code (CVC) is incorrect."),
        ("invalid_cvc", "The card's security code (CVC) is incorrect."),
        ("incorrect_number", "The card number is incorrect."),
        ("processing_error", "The card could not be processed. Please try again."),
        (
            "authentication_required",
            "Your bank asks you to confirm this payment. Please try again and follow its steps.",
        ),
        (
            "card_velocity_exceeded",
            "The card has reached its spending limit. Please use another card or ask your bank.",
        ),
        ("abandoned", "The payment was not completed in time."),
    ],
)
def test_every_decline_code_has_the_parents_own_words(code, english):
    payment = Payment(failure_code=code, failure_message="Your card was declined.")
    with force_locale("en"):
        assert str(payment.failure_text) == english
    assert "Your card was declined" not in str(payment.failure_text)


def flash_errors(html: str) -> list[str]:
    return [
        re.sub(r"\s+", " ", text).strip()
        for text in re.findall(r'<p class="flash flash-error"[^>]*>(.*?)</p>', html, re.S)
    ]


def test_a_declined_card_on_a_chinese_group_buy_page_is_told_in_chinese_only(client, institution):
    group_buy = make_group_buy(institution, team_size=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    friend = client.application.test_client()
    friend.get("/lang/zh_CN")  # the friend's phone reads Chinese

    response = join_team(friend, institution, group_buy, team, 2, card_number=DECLINED)
    page = friend.get(response.headers["Location"]).get_data(as_text=True)

    (failure,) = flash_errors(page)
    assert failure.startswith("支付未成功")
    assert not re.search(r"[A-Za-z]", failure), failure  # not a word of Stripe's English
    payment = members(team)[1].payment
    assert payment.status == PaymentStatus.FAILED
    assert payment.failure_message  # Stripe's own words are kept for staff
    assert payment.failure_message not in page
