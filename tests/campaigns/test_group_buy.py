"""Group buys end to end through the public pages, localstripe and the jobs."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import func, select

from app.campaigns.models import MemberStatus, ReleaseReason, Team, TeamMember, TeamStatus
from app.campaigns.tasks import settle_team, sweep_teams
from app.contacts.models import Contact
from app.courses.models import Enrolment, EnrolmentSource, Seat, SeatStatus
from app.db import utcnow
from app.devtools.mailsink import body_text
from app.extensions import db, redis_connection
from app.groups import services as groups
from app.groups.models import GroupKind, GroupMember, JoinVia
from app.groups.models import MemberStatus as GroupMemberStatus
from app.jobs import run_burst
from app.leads.models import Lead, Stage
from app.notifications.models import OutboxMessage, OutboxStatus
from app.payments.models import Payment, PaymentStatus, PaymentTransition
from app.tenancy import bound
from tests.factories import make_group_buy
from tests.helpers import (
    DECLINED,
    captures_of,
    intent,
    join_team,
    login,
    members,
    offered_group_link,
    only_team,
    open_team,
    pay_like_stripe_js,
    statements,
)


def messages(institution, kind: str) -> list[OutboxMessage]:
    return list(
        db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.institution_id == institution.id,
                OutboxMessage.template == kind,
                OutboxMessage.channel == "email",
            )
        )
    )


def fill_team(client, institution, group_buy, size: int = 3) -> Team:
    assert open_team(client, institution, group_buy, 1).status_code == 302
    team = only_team(group_buy)
    for n in range(2, size + 1):
        response = join_team(client, institution, group_buy, team, n)
        assert response.status_code == 302, response.get_data(as_text=True)
    return team


def test_team_of_three_fills_and_every_hold_is_captured_exactly_once_even_when_settled_twice(
    client, institution, mail_server
):
    group_buy = make_group_buy(institution, team_size=3)

    team = fill_team(client, institution, group_buy)

    db.session.refresh(team)
    assert (team.status, team.member_count) == (TeamStatus.SUCCEEDED, 3)
    assert [m.status for m in members(team)] == [MemberStatus.AUTHORISED] * 3
    assert all(intent(m.payment.intent_id)["status"] == "requires_capture" for m in members(team))
    held = {lead.stage for lead in db.session.scalars(select(Lead))}
    assert held == {Stage.TRIAL_BOOKED}  # a place held in a team is a booking, not a new lead

    run_burst()  # the settlement queued when the third hold succeeded
    settle_team(institution.id, team.id)  # and again, as the sweeper might

    db.session.refresh(team)
    assert team.settled_at is not None
    for member in members(team):
        assert member.status == MemberStatus.CAPTURED
        assert member.payment.status == PaymentStatus.CAPTURED
        assert intent(member.payment.intent_id)["status"] == "succeeded"
        assert captures_of(member.payment.intent_id) == 1
        captured = [t for t in member.payment.transitions if t.to_status == PaymentStatus.CAPTURED]
        assert len(captured) == 1
    enrolments = db.session.scalars(
        select(Enrolment).where(Enrolment.course_id == group_buy.course_id)
    ).all()
    assert sorted(e.student.name for e in enrolments) == ["Child 1", "Child 2", "Child 3"]
    assert {e.source for e in enrolments} == {EnrolmentSource.CAMPAIGN}
    booked = db.session.scalar(
        select(func.count()).select_from(Seat).where(Seat.status == SeatStatus.BOOKED)
    )
    assert booked == 6  # three children, two lessons each
    assert {lead.stage for lead in db.session.scalars(select(Lead))} == {Stage.ENROLLED}
    succeeded = messages(institution, "team_succeeded")
    assert sorted(m.recipient for m in succeeded) == [f"parent{n}@example.com" for n in (1, 2, 3)]
    assert {m.status for m in succeeded} == {OutboxStatus.SENT}
    assert "¥199.00" in succeeded[0].body


def test_team_that_expires_releases_every_hold_and_tells_each_family(client, institution):
    group_buy = make_group_buy(institution, team_size=3, team_hours=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    join_team(client, institution, group_buy, team, 2)
    assert only_team(group_buy).member_count == 2

    redis_connection.client.flushdb()  # the deadline's own job is lost with Redis
    with time_machine.travel(utcnow() + timedelta(hours=2, minutes=1), tick=False):
        assert sweep_teams() == 1  # the sweeper finds the team from its row
        run_burst()

    db.session.refresh(team)
    assert team.status == TeamStatus.FAILED
    for member in members(team):
        assert (member.status, member.release_reason) == (
            MemberStatus.RELEASED,
            ReleaseReason.TEAM_FAILED,
        )
        assert member.payment.status == PaymentStatus.RELEASED
        assert intent(member.payment.intent_id)["status"] == "canceled"
        assert captures_of(member.payment.intent_id) == 0
    failed = messages(institution, "team_failed")
    assert sorted(m.recipient for m in failed) == ["parent1@example.com", "parent2@example.com"]
    assert "no money was taken" in failed[0].body
    assert db.session.scalar(select(func.count()).select_from(Enrolment)) == 0


def test_join_after_the_deadline_is_refused_whatever_the_page_showed(client, institution):
    group_buy = make_group_buy(institution, team_size=3, team_hours=1)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    page = client.get(f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}")
    assert f'data-deadline="{team.expires_at.isoformat()}"' in page.get_data(as_text=True)

    with time_machine.travel(team.expires_at + timedelta(seconds=1), tick=False):
        response = join_team(client, institution, group_buy, team, 2)

    assert response.status_code == 422
    assert "time is up" in response.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1  # the leader's
    assert len(members(team)) == 1


def test_a_family_cannot_join_the_same_team_twice_nor_more_teams_than_allowed(client, institution):
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)

    again = join_team(client, institution, group_buy, team, 1)
    second_team = open_team(client, institution, group_buy, 1)

    assert again.status_code == 422
    assert "already in this team" in again.get_data(as_text=True)
    assert second_team.status_code == 422
    assert "can join 1 team" in second_team.get_data(as_text=True)
    assert db.session.scalar(select(func.count()).select_from(TeamMember)) == 1
    assert db.session.scalar(select(func.count()).select_from(Payment)) == 1


def test_a_declined_card_takes_no_seat_and_says_nothing_was_taken(client, institution):
    group_buy = make_group_buy(institution, team_size=2)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)

    response = join_team(client, institution, group_buy, team, 2, card_number=DECLINED)
    page = client.get(response.headers["Location"]).get_data(as_text=True)

    assert "The card was declined. Please use another card or ask your bank." in page
    assert "Nothing is taken from your card" in page
    member = members(team)[1]
    assert (member.status, member.release_reason) == (MemberStatus.FAILED, ReleaseReason.DECLINED)
    assert member.payment.status == PaymentStatus.FAILED
    db.session.refresh(team)
    assert (team.status, team.member_count) == (TeamStatus.FORMING, 1)
    # The same family can try again with another card.
    retry = join_team(client, institution, group_buy, team, 2)
    assert retry.status_code == 302
    db.session.refresh(team)
    assert team.status == TeamStatus.SUCCEEDED


def test_invalid_details_change_nothing(client, institution):
    group_buy = make_group_buy(institution)
    response = open_team(client, institution, group_buy, 1, phone="12", consent="")
    assert response.status_code == 422
    assert db.session.scalar(select(func.count()).select_from(Contact)) == 0
    assert db.session.scalar(select(func.count()).select_from(Team)) == 0


def test_staff_release_a_hold_and_the_seat_frees_up(client, institution, owner):
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1)
    team = only_team(group_buy)
    join_team(client, institution, group_buy, team, 2)
    second = members(team)[1]
    login(client, owner)

    response = client.post(
        f"/staff/{institution.slug}/campaigns/{group_buy.id}/members/{second.id}/release"
    )

    assert response.status_code == 302
    db.session.refresh(second)
    assert (second.status, second.release_reason) == (MemberStatus.RELEASED, ReleaseReason.STAFF)
    assert intent(second.payment.intent_id)["status"] == "canceled"
    assert only_team(group_buy).member_count == 1
    causes = [t.cause for t in second.payment.transitions]
    assert causes[0] == "checkout" and causes[-1].startswith("released by ")
    assert [m.recipient for m in messages(institution, "hold_released")] == ["parent2@example.com"]


def test_staff_see_figures_and_members_with_payment_states(client, institution, owner):
    group_buy = make_group_buy(institution, team_size=2)
    fill_team(client, institution, group_buy, size=2)
    run_burst()
    login(client, owner)

    listing = client.get(f"/staff/{institution.slug}/campaigns").get_data(as_text=True)
    detail = client.get(f"/staff/{institution.slug}/campaigns/{group_buy.id}").get_data(
        as_text=True
    )

    assert "¥398.00" in listing  # revenue captured: two families at ¥199
    assert "Parent 2" in detail and "Paid" in detail


def test_team_window_and_live_prices_are_guarded(client, institution, owner):
    group_buy = make_group_buy(institution)
    login(client, owner)
    form = {
        "title": "Too long",
        "course_id": group_buy.course_id,
        "list_price": "499",
        "group_price": "199",
        "team_size": "3",
        "team_hours": "170",
        "starts_at": "2026-12-01T10:00",
        "ends_at": "2026-12-20T10:00",
        "per_contact_limit": "1",
    }
    too_long = client.post(f"/staff/{institution.slug}/campaigns/new", data=form)
    cheaper = client.post(
        f"/staff/{institution.slug}/campaigns/{group_buy.id}/edit",
        data={**form, "team_hours": "24", "group_price": "99"},
    )

    assert too_long.status_code == 422
    assert "card holds last about 7 days" in too_long.get_data(as_text=True)
    assert cheaper.status_code == 422
    assert "cannot change once the campaign is published" in cheaper.get_data(as_text=True)
    db.session.refresh(group_buy)
    assert group_buy.group_price_amount == 19900


def test_public_pages_mask_names_and_carry_preview_tags(client, institution):
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1, parent_name="Wang Fang")
    team = only_team(group_buy)
    stranger = client.application.test_client()

    campaign = stranger.get(f"/{institution.slug}/gb/{group_buy.code}").get_data(as_text=True)
    team_page = stranger.get(f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}")

    html = team_page.get_data(as_text=True)
    assert "W**" in html and "Wang Fang" not in html
    assert "2 more families needed" in html
    assert '<progress class="team-progress" max="3" value="1">' in html
    assert "Buy alone" in html and "Join the team" in html  # the bar's two choices
    assert 'property="og:title"' in html and "data-server-now" in html
    assert f"/t/{team.code}" in campaign  # a stranger sees the team to join
    assert (
        stranger.get(f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}/qr.svg").status_code
        == 200
    )


def test_the_payment_history_records_every_transition(client, institution):
    group_buy = make_group_buy(institution, team_size=2)
    fill_team(client, institution, group_buy, size=2)
    run_burst()
    history = db.session.scalars(select(PaymentTransition).order_by(PaymentTransition.id)).all()
    assert [(t.from_status, t.to_status) for t in history] == [
        (PaymentStatus.PENDING, PaymentStatus.AUTHORISED),
        (PaymentStatus.PENDING, PaymentStatus.AUTHORISED),
        (PaymentStatus.AUTHORISED, PaymentStatus.CAPTURED),
        (PaymentStatus.AUTHORISED, PaymentStatus.CAPTURED),
    ]


def test_with_the_payment_element_a_join_is_paid_in_the_browser_and_read_back_on_return(
    app, client, institution, monkeypatch
):
    """Real Stripe: no card fields here; the parent is sent to the checkout page, Stripe.js
    confirms the hold, and our return page reads it back and claims the seat."""
    monkeypatch.setitem(app.config, "STRIPE_CHECKOUT", "payment_element")
    group_buy = make_group_buy(institution, team_size=2)
    form_page = client.get(f"/{institution.slug}/gb/{group_buy.code}").get_data(as_text=True)

    opened = open_team(client, institution, group_buy, 1, card_number="", card_cvc="")
    checkout_url = opened.headers["Location"]
    checkout = client.get(checkout_url)
    leader = members(only_team(group_buy))[0]
    page = checkout.get_data(as_text=True)

    assert "card_number" not in form_page
    assert opened.status_code == 302 and f"/{institution.slug}/pay/" in checkout_url
    assert checkout.status_code == 200
    assert f"{leader.payment.intent_id}_secret_" in page and "pk_test_cohort" in page
    assert "https://js.stripe.com/v3/" in page
    assert "https://js.stripe.com" in checkout.headers["Content-Security-Policy"]
    assert (
        "js.stripe.com"
        not in client.get(f"/{institution.slug}/gb/{group_buy.code}").headers[
            "Content-Security-Policy"
        ]
    )  # only the checkout page may load Stripe.js
    assert leader.status == MemberStatus.PENDING
    assert intent(leader.payment.intent_id).capture_method == "manual"

    pay_like_stripe_js(leader.payment.intent_id)
    back = client.get(f"{checkout_url}/done?redirect_status=succeeded")

    team = only_team(group_buy)
    db.session.refresh(leader)
    assert back.status_code == 302
    assert back.headers["Location"].endswith(f"/gb/{group_buy.code}/t/{team.code}")
    assert (leader.status, team.member_count) == (MemberStatus.AUTHORISED, 1)
    assert [t.cause for t in leader.payment.transitions] == ["checkout return"]
    # Paid: the checkout link now leads on to the team instead of asking again.
    assert client.get(checkout_url).headers["Location"].endswith(f"/t/{team.code}")


def test_the_families_of_a_filled_team_join_the_courses_class_group(
    client, institution, mail_server
):
    group_buy = make_group_buy(institution, team_size=2)
    with bound(institution):
        class_group = groups.create_group(
            institution,
            title="寒假数学班",
            kind=GroupKind.CLASS,
            course_id=group_buy.course_id,
            rules="友善交流",
        )
        trial_group = groups.create_group(
            institution, title="试听群", kind=GroupKind.TRIAL, course_id=group_buy.course_id
        )
        db.session.commit()

    team = fill_team(client, institution, group_buy, size=2)
    run_burst()  # the settlement

    joined = db.session.scalars(select(GroupMember).where(GroupMember.group_id == class_group.id))
    assert sorted((m.status, m.joined_via) for m in joined) == [
        (GroupMemberStatus.ACTIVE, JoinVia.CAMPAIGN)
    ] * len(members(team))
    assert groups.active_member_count(trial_group) == 0  # a trial group is offered, not joined


def test_a_filled_teams_family_is_offered_its_class_group_on_the_team_page_and_by_e_mail(
    app, client, institution, mail_server
):
    group_buy = make_group_buy(institution, team_size=2)
    with bound(institution):
        class_group = groups.create_group(
            institution,
            title="寒假数学班",
            kind=GroupKind.CLASS,
            course_id=group_buy.course_id,
            rules="友善交流",
        )
        db.session.commit()
    team = fill_team(client, institution, group_buy, size=2)  # `client` is the families'
    team_page = f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}"
    button = f'href="/{institution.slug}/g/{class_group.code}">Open the class group</a>'
    assert button not in client.get(team_page).get_data(as_text=True)  # not paid yet

    run_burst()  # the settlement: paid, enrolled, in the class group

    stranger = app.test_client()
    mine = client.get(team_page).get_data(as_text=True)
    theirs = stranger.get(team_page).get_data(as_text=True)  # rendered, and kept
    with statements() as sent:
        kept = stranger.get(team_page).get_data(as_text=True)
    mine_again = client.get(team_page).get_data(as_text=True)  # the family's, never the kept
    assert sent == [] and "The team is full!" in kept  # the kept page, served from Redis
    assert button in mine and button in mine_again
    assert button not in theirs and button not in kept
    (mail,) = [
        m for m in mail_server.to("parent1@example.com") if "The team is full" in m["Subject"]
    ]
    _link, then = offered_group_link(mail, "寒假数学班")
    assert "Join the class group" in body_text(mail)
    assert then == f"/{institution.slug}/g/{class_group.code}"
