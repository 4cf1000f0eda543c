"""Reconciliation reads every unfinished payment back from Stripe and applies it."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from app.campaigns.models import MemberStatus, ReleaseReason
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxMessage
from app.payments.models import PaymentStatus
from app.payments.tasks import reconcile_payments
from tests.factories import make_group_buy
from tests.helpers import join_team, members, only_team, open_team, parent, stripe_client


def test_a_hold_that_expires_at_stripe_is_found_and_its_seat_freed(client, institution):
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    join_team(client, institution, group_buy, team, 2)
    second = members(team)[1]
    # Stripe drops an uncaptured hold after about 7 days and no webhook reaches us.
    stripe_client().v1.payment_intents.cancel(second.payment.intent_id)

    with time_machine.travel(utcnow() + timedelta(minutes=5), tick=False):
        assert reconcile_payments() == 1  # one batch: both holds of the institution
        run_burst()

    db.session.refresh(second)
    db.session.refresh(team)
    assert (second.status, second.release_reason) == (
        MemberStatus.RELEASED,
        ReleaseReason.HOLD_EXPIRED,
    )
    assert second.payment.status == PaymentStatus.RELEASED
    assert team.member_count == 1
    assert members(team)[0].payment.status == PaymentStatus.AUTHORISED  # untouched
    told = db.session.scalars(
        select(OutboxMessage.recipient).where(OutboxMessage.template == "hold_released")
    ).all()
    assert "parent2@example.com" in told


def test_a_checkout_left_pending_is_cancelled_after_its_time_limit(client, institution, app):
    group_buy = make_group_buy(institution, team_size=3)
    from app.campaigns import services
    from app.contacts.models import FamilyDetails, SourceKind
    from app.contacts.services import Touch
    from app.tenancy import bound

    details = {k: v for k, v in parent(1).items() if k in ("parent_name", "phone", "student_name")}
    with bound(institution):
        member = services.start_join(
            institution, group_buy, None, FamilyDetails(**details), Touch(SourceKind.CAMPAIGN)
        )
        db.session.commit()  # the request died before Stripe was called

    with time_machine.travel(utcnow() + timedelta(minutes=16), tick=False):
        reconcile_payments()
        run_burst()

    db.session.refresh(member)
    assert member.payment.status == PaymentStatus.FAILED
    assert member.status in (MemberStatus.FAILED, MemberStatus.RELEASED)
    assert not member.is_active  # the family can try again
