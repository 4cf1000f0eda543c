"""Referrals: a family's links carry its code, and the family that brought a friend is
credited once per friend and step (trial registration, payment, a place in a team), never
for itself, never twice; staff see the top referrers and who brought whom."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from rq.job import Job
from sqlalchemy import func, select

from app.contacts.models import Contact
from app.extensions import db, redis_connection
from app.groups import services as groups
from app.groups.models import GroupMember, JoinVia
from app.jobs import run_burst
from app.loyalty import queries
from app.loyalty.models import PointsEntry, PointsReason, Referral, ReferralEvent
from app.notifications.models import OutboxMessage
from app.tenancy import bound
from tests.factories import make_course, make_form, make_group_buy, make_institution
from tests.helpers import FAMILY, login, only_team, parent
from tests.loyalty.test_points import make_family
from tests.loyalty.test_views import family_client


def register_trial(client, institution, course, ref: str | None, **family):
    query = f"?ref={ref}" if ref else ""
    data = {**FAMILY, **family, "lessons": [lesson.id for lesson in course.lessons]}
    response = client.post(f"/{institution.slug}/c/{course.code}{query}", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    run_burst()  # the referral is credited by a job, after the registration commits


def referral_points(contact) -> int:
    return db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.contact_id == contact.id, PointsEntry.reason == PointsReason.REFERRAL
        )
    )


def friend() -> Contact:
    return db.session.scalar(select(Contact).where(Contact.parent_name == FAMILY["parent_name"]))


def test_a_friend_who_registers_through_a_familys_link_earns_it_points_once(client, institution):
    referrer = make_family(institution, 1)
    db.session.commit()
    first, second = make_course(institution), make_course(institution)
    per_referral = queries.points_rules(institution).per_referral

    register_trial(client, institution, first, referrer.referral_code)
    register_trial(client, institution, second, referrer.referral_code)  # the same friend again

    referral = db.session.scalars(select(Referral)).one()
    assert (referral.referrer_id, referral.referred_id) == (referrer.id, friend().id)
    assert referral.event == ReferralEvent.REGISTRATION
    assert referral.source == f"course:{first.code}"
    assert referral_points(referrer) == per_referral
    message = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "referral_credited")
    ).all()
    assert message and {m.contact_id for m in message} == {referrer.id}


def test_a_family_that_refers_itself_or_uses_an_unknown_code_earns_nothing(client, institution):
    course = make_course(institution)
    register_trial(client, institution, course, None)
    family = friend()

    register_trial(client, institution, make_course(institution), family.referral_code)
    register_trial(client, institution, make_course(institution), "no-such-code")

    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0
    assert referral_points(family) == 0


def test_a_new_family_without_a_code_queues_no_referral_job(client, institution):
    referrer = make_family(institution, 1)
    db.session.commit()
    course = make_course(institution)
    data = {**FAMILY, "lessons": [lesson.id for lesson in course.lessons]}

    plain = client.post(f"/{institution.slug}/c/{course.code}", data=data)
    referred = client.post(
        f"/{institution.slug}/c/{course.code}?ref={referrer.referral_code}",
        data={**data, "phone": "13700137000", "parent_name": "Zhao Min"},
    )

    assert plain.status_code == referred.status_code == 302
    families = {c.parent_name: c.id for c in db.session.scalars(select(Contact))}
    queued = {
        name: Job.exists(
            f"referral-{institution.id}-{families[name]}-registration",
            connection=redis_connection.client,
        )
        for name in (FAMILY["parent_name"], "Zhao Min")
    }
    assert queued == {FAMILY["parent_name"]: False, "Zhao Min": True}


def test_a_second_family_cannot_claim_a_friend_already_credited_for_the_same_step(
    client, institution
):
    first, second = make_family(institution, 1), make_family(institution, 2)
    db.session.commit()

    register_trial(client, institution, make_course(institution), first.referral_code)
    register_trial(client, institution, make_course(institution), second.referral_code)

    assert [r.referrer_id for r in db.session.scalars(select(Referral))] == [first.id]
    assert referral_points(second) == 0


def test_a_code_of_another_institution_credits_nobody(client, institution):
    other = make_institution()
    db.session.commit()
    stranger = make_family(other, 1)
    db.session.commit()

    register_trial(client, institution, make_course(institution), stranger.referral_code)

    assert db.session.scalar(select(func.count()).select_from(Referral)) == 0


def test_joining_a_team_and_paying_are_each_credited_once(client, institution):
    referrer = make_family(institution, 1)
    db.session.commit()
    group_buy = make_group_buy(institution, team_size=2)
    url = f"/{institution.slug}/gb/{group_buy.code}"

    opened = client.post(f"{url}?ref={referrer.referral_code}", data=parent(10))
    assert opened.status_code == 302
    team = only_team(group_buy)
    joined = client.post(f"{url}/t/{team.code}", data=parent(11))  # no code: no one to credit
    assert joined.status_code == 302
    run_burst()

    events = sorted(r.event.value for r in db.session.scalars(select(Referral)))
    assert events == ["payment", "team_join"]  # the team filled: the leader paid
    per_referral = queries.points_rules(institution).per_referral
    assert referral_points(referrer) == 2 * per_referral


def test_a_member_who_shares_the_groups_link_brings_a_family_in_by_referral(app, institution):
    with bound(institution):
        group = groups.create_group(institution, title="三年级数学群", rules="友善交流")
        invite = groups.create_invite(institution, group)
        member = make_family(institution, 1)
        groups.add_member(institution, group, member)
        newcomer = make_family(institution, 2)
        db.session.commit()
    phone = family_client(app, institution, newcomer)

    invitation = phone.get(f"/{institution.slug}/me/invite").get_data(as_text=True)
    assert "三年级数学群" not in invitation  # not theirs to share
    sharer = family_client(app, institution, member)
    page = sharer.get(f"/{institution.slug}/me/invite").get_data(as_text=True)
    assert f"/j/{invite.code}?ref={member.referral_code}" in page
    joined = phone.post(
        f"/{institution.slug}/j/{invite.code}?ref={member.referral_code}",
        data={"accept_rules": "y"},
    )

    assert joined.status_code == 302
    row = db.session.scalar(select(GroupMember).where(GroupMember.contact_id == newcomer.id))
    assert row.joined_via == JoinVia.REFERRAL


def test_the_qr_code_carries_the_familys_code_and_only_for_this_site(app, institution):
    family = make_family(institution, 1)
    course = make_course(institution)
    db.session.commit()
    phone = family_client(app, institution, family)
    base = f"/{institution.slug}/me/invite/qr.svg"

    form = make_form(institution)
    db.session.commit()
    invitation = phone.get(f"/{institution.slug}/me/invite").get_data(as_text=True)
    assert f"/f/{form.code}?ref={family.referral_code}" in invitation  # forms carry it too
    qr = phone.get(f"{base}?to=/{institution.slug}/c/{course.code}")
    assert qr.status_code == 200 and qr.mimetype == "image/svg+xml"
    assert phone.get(f"{base}?to=https://evil.example/x").status_code == 404
    assert phone.get(f"{base}?to=/other-school/c/{course.code}").status_code == 404
    page = phone.get(f"/{institution.slug}/me/invite").get_data(as_text=True)
    link = next(word for word in page.split('"') if word.startswith("http") and course.code in word)
    assert parse_qs(urlsplit(link.replace("&amp;", "&")).query)["ref"] == [family.referral_code]


def test_staff_see_the_top_referrers_and_who_brought_whom(client, institution, owner):
    grandparent = make_family(institution, 1)
    db.session.commit()
    register_trial(client, institution, make_course(institution), grandparent.referral_code)
    middle = friend()
    register_trial(
        client,
        institution,
        make_course(institution),
        middle.referral_code,
        parent_name="李雷",
        phone="139 0013 9000",
        email="li@example.com",
    )

    chains = queries.referral_chains(institution)
    assert [link.contact.id for link in chains] == [grandparent.id]
    assert [link.contact.parent_name for link in chains[0].brought] == [middle.parent_name]
    assert [link.contact.parent_name for link in chains[0].brought[0].brought] == ["李雷"]
    login(client, owner)
    page = client.get(f"/staff/{institution.slug}/referrals").get_data(as_text=True)
    assert "李雷" in page and grandparent.parent_name in page
    filtered = client.get(f"/staff/{institution.slug}/referrals?source=nonsense")
    assert filtered.status_code == 200
