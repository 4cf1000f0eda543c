"""Stripe webhooks: signature on the raw body, stored once, processed by reading back."""

from __future__ import annotations

import hashlib
import hmac
import json
import time

from sqlalchemy import func, select

from app.campaigns.models import MemberStatus
from app.extensions import db
from app.jobs import run_burst
from app.payments import services
from app.payments.models import PaymentStatus, PaymentTransition, StripeEvent
from app.tenancy import bound
from tests.factories import make_group_buy
from tests.helpers import join_team, members, only_team, open_team

SECRET = "whsec_test_cohort"


def signed(payload: bytes, secret: str = SECRET) -> dict:
    stamp = int(time.time())
    signature = hmac.new(secret.encode(), b"%d." % stamp + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={stamp},v1={signature}", "Content-Type": "application/json"}


def event(event_id: str, kind: str, intent_id: str, status: str) -> bytes:
    return json.dumps(
        {
            "id": event_id,
            "object": "event",
            "type": kind,
            "created": int(time.time()),
            "data": {"object": {"id": intent_id, "object": "payment_intent", "status": status}},
        }
    ).encode()


def with_webhook_secret(institution) -> None:
    with bound(institution):
        services.save_account(institution, webhook_secret=SECRET)
        db.session.commit()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_a_bad_signature_is_refused_and_stores_nothing(client, institution):
    with_webhook_secret(institution)
    payload = event("evt_1", "payment_intent.succeeded", "pi_x", "succeeded")

    forged = client.post(
        f"/stripe/webhook/{institution.slug}", data=payload, headers=signed(payload, "whsec_no")
    )
    tampered = client.post(
        f"/stripe/webhook/{institution.slug}",
        data=payload.replace(b"succeeded", b"canceled"),
        headers=signed(payload),
    )
    unsigned = client.post(f"/stripe/webhook/{institution.slug}", data=payload)

    assert [r.status_code for r in (forged, tampered, unsigned)] == [400, 400, 400]
    assert forged.get_json() == {"error": "bad_signature"}
    assert count(StripeEvent) == 0


def test_duplicate_and_out_of_order_events_change_nothing_twice(client, institution):
    with_webhook_secret(institution)
    group_buy = make_group_buy(institution, team_size=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    join_team(client, institution, group_buy, team, 2)
    run_burst()  # settlement: both captured
    first = members(team)[0]
    intent_id = first.payment.intent_id
    transitions = count(PaymentTransition)
    url = f"/stripe/webhook/{institution.slug}"

    succeeded = event("evt_succeeded", "payment_intent.succeeded", intent_id, "succeeded")
    # Arrives last although it happened first: the hold, long since captured.
    stale = event(
        "evt_held", "payment_intent.amount_capturable_updated", intent_id, "requires_capture"
    )
    responses = [
        client.post(url, data=succeeded, headers=signed(succeeded)),
        client.post(url, data=succeeded, headers=signed(succeeded)),
        client.post(url, data=stale, headers=signed(stale)),
    ]
    run_burst()

    assert [r.status_code for r in responses] == [200, 200, 200]
    assert responses[1].get_json() == {"received": True, "duplicate": True}
    assert count(StripeEvent) == 2
    assert all(e.processed_at is not None for e in db.session.scalars(select(StripeEvent)))
    assert count(PaymentTransition) == transitions  # nothing moved, nothing moved twice
    db.session.refresh(first)
    assert (first.status, first.payment.status) == (MemberStatus.CAPTURED, PaymentStatus.CAPTURED)


def test_a_webhook_finishes_a_checkout_the_browser_never_came_back_from(client, institution):
    """The hold succeeded at Stripe but our request died before recording it: the event
    (or reconciliation) reads the PaymentIntent back and the seat is claimed."""
    with_webhook_secret(institution)
    group_buy = make_group_buy(institution, team_size=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    leader = members(team)[0]
    # Rewind our side to "pending", as if the answer from Stripe had been lost.
    leader.status = MemberStatus.PENDING
    leader.payment.status = PaymentStatus.PENDING
    db.session.execute(
        PaymentTransition.__table__.delete().where(
            PaymentTransition.payment_id == leader.payment_id
        )
    )
    team.member_count = 0
    db.session.commit()

    payload = event(
        "evt_auth", "payment_intent.amount_capturable_updated", leader.payment.intent_id, "x"
    )
    assert (
        client.post(
            f"/stripe/webhook/{institution.slug}", data=payload, headers=signed(payload)
        ).status_code
        == 200
    )
    run_burst()

    db.session.refresh(leader)
    db.session.refresh(team)
    assert (leader.status, team.member_count) == (MemberStatus.AUTHORISED, 1)
    assert [t.cause for t in leader.payment.transitions] == [
        "webhook payment_intent.amount_capturable_updated evt_auth"
    ]


def test_settings_keep_secrets_and_never_show_them_again(client, institution, owner):
    from tests.helpers import login

    login(client, owner)
    url = f"/staff/{institution.slug}/settings/payments"
    saved = client.post(
        url,
        data={
            "publishable_key": "pk_test_abc",
            "secret_key": "sk_test_secret123",
            "webhook_secret": "whsec_s3cret",
        },
    )
    again = client.post(url, data={"publishable_key": "pk_test_abc"})  # secrets left empty
    page = client.get(url).get_data(as_text=True)

    assert (saved.status_code, again.status_code) == (302, 302)
    assert "sk_test_secret123" not in page and "whsec_s3cret" not in page
    assert "pk_test_abc" in page
    assert f"/stripe/webhook/{institution.slug}" in page
    from app.payments.queries import account_of

    account = account_of(institution.id)
    assert (account.secret_key, account.webhook_secret) == ("sk_test_secret123", "whsec_s3cret")
    bad = client.post(url, data={"secret_key": "password"})
    assert bad.status_code == 422
