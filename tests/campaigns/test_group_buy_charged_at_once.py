"""Group buys that charge at once (the mode WeChat Pay and Alipay need: they cannot hold
money), end to end against localstripe with the test card: each family is charged once
when it joins, a team that fills takes nothing more, a team that fails refunds every
family exactly once, however often its failure is run."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from app.campaigns.models import GroupBuy, MemberStatus, ReleaseReason, TeamStatus
from app.campaigns.tasks import fail_team, settle_team
from app.courses.models import Enrolment
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxMessage
from app.payments import gateway
from app.payments import services as payments
from app.payments.models import PaymentStatus
from app.tenancy import bound
from tests.factories import make_group_buy
from tests.helpers import (
    captures_of,
    intent,
    join_team,
    login,
    members,
    only_team,
    open_team,
    pay_like_stripe_js,
    refunds_of,
)

PAY_NOW = "You pay now; if the team does not fill, the full amount is refunded automatically."
HOLD = "Your card is only held now."


def message_bodies(institution, kind: str) -> list[str]:
    return list(
        db.session.scalars(
            select(OutboxMessage.body).where(
                OutboxMessage.institution_id == institution.id,
                OutboxMessage.template == kind,
                OutboxMessage.channel == "email",
            )
        )
    )


def transitions_to(payment, status: PaymentStatus) -> int:
    return sum(1 for t in payment.transitions if t.to_status == status)


def test_joining_charges_at_once_and_a_team_that_fills_takes_nothing_more_nor_refunds(
    client, institution
):
    group_buy = make_group_buy(institution, team_size=3, is_charged_at_once=True)

    assert open_team(client, institution, group_buy, 1).status_code == 302
    team = only_team(group_buy)
    assert join_team(client, institution, group_buy, team, 2).status_code == 302
    forming = members(team)
    # Paid at once, seated, and the team still forming: nothing waits to be captured.
    assert [m.status for m in forming] == [MemberStatus.CHARGED] * 2
    for member in forming:
        assert not member.payment.is_manual_capture
        assert intent(member.payment.intent_id)["capture_method"] == "automatic"
        assert intent(member.payment.intent_id)["status"] == "succeeded"
    assert join_team(client, institution, group_buy, team, 3).status_code == 302

    run_burst()  # the settlement queued when the third family paid
    settle_team(institution.id, team.id)  # and again, as the sweeper might

    db.session.refresh(team)
    assert (team.status, team.member_count) == (TeamStatus.SUCCEEDED, 3)
    assert team.settled_at is not None
    for member in members(team):
        assert member.status == MemberStatus.CAPTURED
        assert member.payment.status == PaymentStatus.CAPTURED
        assert captures_of(member.payment.intent_id) == 1  # charged exactly once
        assert refunds_of(member.payment.intent_id) == 0
        assert transitions_to(member.payment, PaymentStatus.CAPTURED) == 1
        assert member.enrolment_id is not None
    assert db.session.get(GroupBuy, group_buy.id).seats_sold == 3
    (confirmation, *_rest) = message_bodies(institution, "team_succeeded")
    assert "Your payment of" in confirmation and "¥199.00 is confirmed" in confirmation
    assert "held on your card" not in confirmation


def test_a_team_that_charged_at_once_and_fails_refunds_each_family_exactly_once(
    client, institution
):
    group_buy = make_group_buy(institution, team_size=3, team_hours=2, is_charged_at_once=True)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    join_team(client, institution, group_buy, team, 2)
    first, second = members(team)
    assert (first.status, second.status) == (MemberStatus.CHARGED, MemberStatus.CHARGED)
    # A worker refunded the first family at Stripe and was killed before it committed.
    with bound(institution):
        gateway.refund_intent(first.payment)
    assert refunds_of(first.payment.intent_id) == 1

    with time_machine.travel(utcnow() + timedelta(hours=2, minutes=1), tick=False):
        assert fail_team(institution.id, team.id) is True
        assert fail_team(institution.id, team.id) is False  # run twice: nothing more
        run_burst()  # the deadline's own job, and the messages

    db.session.refresh(team)
    assert team.status == TeamStatus.FAILED
    for member in members(team):
        assert (member.status, member.release_reason) == (
            MemberStatus.REFUNDED,
            ReleaseReason.TEAM_FAILED,
        )
        assert member.payment.status == PaymentStatus.REFUNDED
        assert refunds_of(member.payment.intent_id) == 1
        assert transitions_to(member.payment, PaymentStatus.REFUNDED) == 1
        with bound(institution):  # and a refund asked again changes nothing
            assert payments.refund(member.payment, "again") == PaymentStatus.REFUNDED
        assert refunds_of(member.payment.intent_id) == 1
        assert captures_of(member.payment.intent_id) == 1
    assert db.session.scalar(select(func.count()).select_from(Enrolment)) == 0
    assert db.session.get(GroupBuy, group_buy.id).seats_sold == 0
    failed = message_bodies(institution, "team_failed")
    assert len(failed) == 2
    assert all("¥199.00 you paid is refunded in full" in body for body in failed)


def test_a_family_paying_at_once_for_a_team_that_filled_meanwhile_is_refunded(
    app, client, institution, monkeypatch
):
    """With the Payment Element two friends can pay for the last seat at the same time:
    the first takes it, the second is refunded in full at once (nothing is left taken)."""
    monkeypatch.setitem(app.config, "STRIPE_CHECKOUT", "payment_element")
    group_buy = make_group_buy(institution, team_size=2, is_charged_at_once=True)
    no_card = {"card_number": "", "card_cvc": ""}
    opened = open_team(client, institution, group_buy, 1, **no_card)
    leader = members(only_team(group_buy))[0]
    pay_like_stripe_js(leader.payment.intent_id)
    client.get(f"{opened.headers['Location']}/done?redirect_status=succeeded")
    team = only_team(group_buy)
    friends = [
        app.test_client().post(
            f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}",
            data={
                "parent_name": f"Friend {n}",
                "phone": f"1390014{n:04d}",
                "student_name": f"Kid {n}",
                "consent": "y",
            },
        )
        for n in (1, 2)
    ]
    checkout_page = app.test_client().get(friends[0].headers["Location"])
    _leader, first, second = members(team)

    for friend, member in zip(friends, (first, second), strict=True):
        pay_like_stripe_js(member.payment.intent_id)
        app.test_client().get(f"{friend.headers['Location']}/done?redirect_status=succeeded")

    db.session.refresh(team)
    assert PAY_NOW in checkout_page.get_data(as_text=True)
    assert (team.status, team.member_count) == (TeamStatus.SUCCEEDED, 2)
    assert intent(first.payment.intent_id)["capture_method"] == "automatic"
    db.session.refresh(first)
    db.session.refresh(second)
    assert first.status == MemberStatus.CHARGED
    assert (second.status, second.release_reason) == (
        MemberStatus.REFUNDED,
        ReleaseReason.TEAM_FULL,
    )
    assert second.payment.status == PaymentStatus.REFUNDED
    assert refunds_of(second.payment.intent_id) == 1
    assert refunds_of(first.payment.intent_id) == 0


def test_the_pages_say_before_paying_that_the_money_is_taken_now_and_refunded_if_the_team_fails(
    client, institution
):
    at_once = make_group_buy(institution, team_size=3, is_charged_at_once=True)
    holding = make_group_buy(institution, team_size=3)
    open_team(client, institution, at_once, 1)
    team = only_team(at_once)
    stranger = client.application.test_client()

    campaign = stranger.get(f"/{institution.slug}/gb/{at_once.code}").get_data(as_text=True)
    team_page = stranger.get(f"/{institution.slug}/gb/{at_once.code}/t/{team.code}")
    mine = client.get(f"/{institution.slug}/gb/{at_once.code}/t/{team.code}").get_data(as_text=True)
    held = stranger.get(f"/{institution.slug}/gb/{holding.code}").get_data(as_text=True)

    assert PAY_NOW in campaign and HOLD not in campaign
    assert "Open a team and pay" in campaign
    html = team_page.get_data(as_text=True)
    assert PAY_NOW in html and HOLD not in html and "Join and pay" in html
    assert "You have paid" in mine  # the family's own place
    assert HOLD in held and PAY_NOW not in held  # the holding mode is unchanged
    assert "Open a team and hold" in held


def test_staff_choose_charging_at_once_and_cannot_change_it_once_published(
    client, institution, owner
):
    holding = make_group_buy(institution)
    login(client, owner)
    form = {
        "title": "WeChat Pay group buy",
        "course_id": holding.course_id,
        "list_price": "499",
        "group_price": "199",
        "team_size": "3",
        "team_hours": "24",
        "starts_at": "2026-12-01T10:00",
        "ends_at": "2026-12-20T10:00",
        "per_contact_limit": "1",
        "is_charged_at_once": "y",
    }
    page = client.get(f"/staff/{institution.slug}/campaigns/new").get_data(as_text=True)
    created = client.post(f"/staff/{institution.slug}/campaigns/new", data=form)
    switched = client.post(
        f"/staff/{institution.slug}/campaigns/{holding.id}/edit",
        data={**form, "title": holding.title},
    )

    assert "needed for WeChat Pay and Alipay" in page
    assert created.status_code == 302
    new = db.session.scalar(select(GroupBuy).where(GroupBuy.title == "WeChat Pay group buy"))
    assert new.is_charged_at_once is True
    assert switched.status_code == 422
    assert "cannot change once the campaign is published" in switched.get_data(as_text=True)
    db.session.refresh(holding)
    assert holding.is_charged_at_once is False
