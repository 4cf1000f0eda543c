"""Tenant isolation across every staff route, and the layers underneath it."""

from __future__ import annotations

from datetime import time, timedelta

import pytest
from sqlalchemy import select
from werkzeug.routing import Rule

from app.accounts.models import Invitation, Membership, Role
from app.accounts.services import invite_member
from app.campaigns import services as campaigns
from app.campaigns.models import MemberStatus, Team, TeamMember
from app.camps import services as camps
from app.contacts.models import Contact, SourceKind
from app.contacts.services import ContactDetails, StudentDetails, Touch, find_or_create_contact
from app.courses import services as courses
from app.courses.models import CourseKind, EnrolmentSource
from app.db import utcnow
from app.extensions import db
from app.groups import services as groups
from app.groups.models import Group, GroupInvite
from app.leads.models import Lead, Stage
from app.leads.services import create_lead, default_fields, save_form
from app.loyalty import services as loyalty
from app.loyalty.models import PointsReason, Redemption, RedemptionStatus, RewardKind
from app.memberships import services as memberships
from app.notifications.models import OutboxMessage
from app.tenancy import bound, get_or_404
from tests.factories import make_institution, make_member
from tests.helpers import login, png_bytes, statements

STAFF_PREFIX = "/staff/<institution_slug>"


def staff_rules(app) -> list[Rule]:
    return [rule for rule in app.url_map.iter_rules() if rule.rule.startswith(STAFF_PREFIX)]


@pytest.fixture
def two_institutions():
    """Institution A with a row of every tenant-owned kind, and B's owner."""
    a = make_institution(slug="school-a")
    b = make_institution(slug="school-b")
    a_owner = make_member(a, Role.OWNER)
    a_staff = make_member(a, Role.STAFF)
    b_owner = make_member(b, Role.OWNER)
    with bound(a):
        a_owner_membership = db.session.scalar(
            select(Membership).where(Membership.user_id == a_owner.id)
        )
        invitation = invite_member(a, a_owner_membership, "new@example.com", Role.STAFF)
        contact, _ = find_or_create_contact(
            a,
            phone="13800138000",
            details=ContactDetails(parent_name="Parent A", students=[StudentDetails("Kid A")]),
            touch=Touch(SourceKind.STAFF),
        )
        lead_form = save_form(
            a,
            None,
            title="Open day",
            intro=None,
            fields=default_fields(),
            consent_text=None,
            thank_you_message=None,
            redirect_url=None,
            is_open=True,
            closes_at=None,
            submission_cap=None,
        )
        lead = create_lead(a, contact, form=lead_form)
        course = courses.save_course(
            a, None, title="Trial", kind=CourseKind.TRIAL, capacity=5, price_amount=0
        )
        lesson = courses.add_lesson(
            course, starts_at=utcnow() + timedelta(days=3), duration_minutes=60, place="Room 1"
        )
        enrolment = courses.enrol(a, course, contact, contact.students[0], EnrolmentSource.STAFF)
        (seat,) = courses.take_seats(a, enrolment, [lesson])
        group_buy = campaigns.save_group_buy(
            a,
            None,
            title="Group buy",
            course_id=course.id,
            list_price_amount=20000,
            group_price_amount=10000,
            leader_price_amount=None,
            team_size=2,
            team_hours=24,
            starts_at=utcnow(),
            ends_at=utcnow() + timedelta(days=3),
            team_limit=None,
            per_contact_limit=1,
        )
        team = Team(
            institution_id=a.id,
            group_buy_id=group_buy.id,
            team_size=2,
            expires_at=group_buy.ends_at,
        )
        db.session.add(team)
        db.session.flush()
        member = TeamMember(
            institution_id=a.id,
            team_id=team.id,
            contact_id=contact.id,
            student_id=contact.students[0].id,
            is_leader=True,
            price_amount=10000,
            status=MemberStatus.AUTHORISED,
        )
        db.session.add(member)
        flash_sale = campaigns.save_flash_sale(
            a,
            None,
            title="Flash sale",
            description=None,
            course_id=course.id,
            list_price_amount=20000,
            sale_price_amount=9900,
            stock=5,
            starts_at=utcnow(),
            ends_at=utcnow() + timedelta(days=1),
            per_family_limit=1,
            pay_minutes=10,
        )
        campaigns.publish_flash_sale(a, flash_sale)
        group = groups.create_group(a, title="Class group", rules="Be kind.")
        invite = groups.create_invite(a, group)
        group_member = groups.add_member(a, group, contact)
        post = groups.write_post(a, group, group_member, "Hello, teacher!", pictures=[png_bytes()])
        camp = camps.create_camp(
            a,
            group,
            title="Reading camp",
            starts_on=utcnow().date(),
            ends_on=utcnow().date() + timedelta(days=20),
            window_start=time(0, 0),
            window_end=time(23, 59),
        )
        tier = memberships.save_tier(
            a, None, name="Gold", price_amount=9900, duration_days=365, perks=None, is_active=True
        )
        memberships.grant_membership(a, contact, tier, None)
        loyalty.add_points(a, contact, 100, PointsReason.CHECKIN, "checkin:tenancy")
        reward = loyalty.create_reward(
            a,
            title="Material pack",
            kind=RewardKind.MATERIALS,
            description=None,
            points_price=50,
            stock=3,
            is_active=True,
        )
        redemption = loyalty.redeem_reward(a, contact, reward, price_seen=reward.points_price)
        db.session.commit()
    message = db.session.scalar(select(OutboxMessage).where(OutboxMessage.institution_id == a.id))
    a_staff_membership = db.session.scalar(
        select(Membership).where(Membership.user_id == a_staff.id)
    )
    # One of A's ids for every id parameter a staff route can take. A new staff route with
    # a parameter not listed here fails test_every_staff_route_parameter_is_covered.
    ids = {
        "membership_id": a_staff_membership.id,
        "invitation_id": invitation.id,
        "message_id": message.id,
        "contact_id": contact.id,
        "form_id": lead_form.id,
        "lead_id": lead.id,
        "course_id": course.id,
        "lesson_id": lesson.id,
        "seat_id": seat.id,
        "enrolment_id": enrolment.id,
        "group_buy_id": group_buy.id,
        "member_id": member.id,
        "flash_sale_id": flash_sale.id,
        "group_id": group.id,
        "invite_id": invite.id,
        "group_member_id": group_member.id,
        "post_id": post.id,
        "image_id": post.images[0].id,
        "camp_id": camp.id,
        "tier_id": tier.id,
        "reward_id": reward.id,
        "redemption_id": redemption.id,
    }
    return a, b, b_owner, ids


# Parameters that name no row (a message kind and a language): every institution has its
# own of each, so there is nothing of A's to ask for through them.
NOT_ROW_PARAMS = {"kind": "lesson_reminder", "locale": "en"}


def id_params(rule: Rule) -> set[str]:
    """The URL parameters that name a row (the slug and fixed defaults do not)."""
    return (
        set(rule.arguments) - {"institution_slug"} - set(rule.defaults or {}) - set(NOT_ROW_PARAMS)
    )


def test_every_staff_route_parameter_is_covered(app, two_institutions):
    *_, ids = two_institutions
    for rule in staff_rules(app):
        missing = id_params(rule) - set(ids)
        assert not missing, f"{rule.rule}: add an institution-A id for {missing} to the sweep"


def _requests(app, slug: str, ids: dict):
    for rule in staff_rules(app):
        values = {name: ids[name] for name in id_params(rule)}
        values.update({k: v for k, v in NOT_ROW_PARAMS.items() if k in rule.arguments})
        path = rule.rule.replace("<institution_slug>", slug)
        for name, value in values.items():
            path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield rule, method, path


def test_staff_of_b_get_404_on_every_route_of_a(app, client, two_institutions):
    a, b, b_owner, ids = two_institutions
    login(client, b_owner)
    seen = 0
    for _rule, method, path in _requests(app, a.slug, ids):
        response = client.open(path, method=method)
        assert response.status_code == 404, (method, path, response.status_code)
        seen += 1
    assert seen >= len(staff_rules(app))


def test_staff_of_b_get_404_for_ids_of_a_under_their_own_institution(app, client, two_institutions):
    a, b, b_owner, ids = two_institutions
    login(client, b_owner)
    checked = 0
    for rule, method, path in _requests(app, b.slug, ids):
        if not id_params(rule):
            continue  # no row id in this route: nothing of A's to ask for
        response = client.open(path, method=method)
        assert response.status_code == 404, (method, path, response.status_code)
        checked += 1
    assert checked >= 5
    # And nothing of A's changed.
    assert db.session.get(Membership, ids["membership_id"]).role == Role.STAFF
    assert db.session.get(Invitation, ids["invitation_id"]).revoked_at is None
    assert db.session.get(Contact, ids["contact_id"]).parent_name == "Parent A"
    assert db.session.get(Lead, ids["lead_id"]).stage == Stage.NEW
    assert db.session.get(Redemption, ids["redemption_id"]).status == RedemptionStatus.REQUESTED


def test_anonymous_visitors_are_sent_to_login_from_every_staff_route(app, client, two_institutions):
    a, _b, _owner, ids = two_institutions
    for _rule, method, path in _requests(app, a.slug, ids):
        response = client.open(path, method=method)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_unknown_institution_is_404(client, owner_client):
    assert owner_client.get("/staff/no-such-school/").status_code == 404
    assert client.get("/no-such-school/logo").status_code == 404


def test_orm_safety_net_hides_other_institutions_rows(two_institutions):
    a, b, *_ = two_institutions
    with bound(b):
        visible = db.session.scalars(select(Membership)).all()
        assert visible and {m.institution_id for m in visible} == {b.id}
        assert db.session.scalars(select(Invitation)).all() == []
    assert {m.institution_id for m in db.session.scalars(select(Membership))} == {a.id, b.id}


def test_scoped_lookup_is_404_for_another_institutions_row(two_institutions):
    from werkzeug.exceptions import NotFound

    a, b, _owner, ids = two_institutions
    with bound(b):
        with pytest.raises(NotFound):
            get_or_404(Membership, ids["membership_id"])
        with pytest.raises(NotFound):
            get_or_404(Membership, "not-a-number")
    with bound(a):
        assert get_or_404(Membership, ids["membership_id"]).institution_id == a.id


def test_every_tenant_table_has_a_non_null_institution_id():
    from app.db import Base

    exempt = {"institutions", "users", "outbox_messages"}  # see their model docstrings
    for table in Base.metadata.sorted_tables:
        if table.name in exempt:
            continue
        column = table.columns.get("institution_id")
        assert column is not None and not column.nullable, table.name
        assert any(index.columns.contains_column(column) for index in table.indexes) or any(
            constraint.columns.contains_column(column)
            for constraint in table.constraints
            if hasattr(constraint, "columns")
        ), f"{table.name}.institution_id is not indexed"


def test_no_institution_slug_can_shadow_a_top_level_path(app):
    from app.institutions.models import RESERVED_SLUGS

    first_segments = {
        rule.rule.strip("/").split("/")[0]
        for rule in app.url_map.iter_rules()
        if rule.rule.strip("/") and not rule.rule.startswith("/<")
    }
    assert first_segments <= RESERVED_SLUGS, first_segments - RESERVED_SLUGS


def test_no_page_writes_to_the_database_on_a_get(app, client, two_institutions):
    """Every staff page of A as A's owner, and A's public pages: not one INSERT, UPDATE or
    DELETE (a GET that writes queues behind row locks, and a crawler could change data)."""

    from app.campaigns.models import FlashSale, GroupBuy
    from app.camps.models import Camp
    from app.courses.models import Course
    from app.leads.models import LeadForm

    a, _b, _b_owner, ids = two_institutions
    login(client, make_member(a, Role.OWNER))
    course = db.session.get(Course, ids["course_id"])
    group_buy = db.session.get(GroupBuy, ids["group_buy_id"])
    group_buy.status = "published"
    db.session.commit()
    team = db.session.scalar(select(Team).where(Team.group_buy_id == group_buy.id))
    paths = [path for _rule, method, path in _requests(app, a.slug, ids) if method == "GET"]
    paths += [
        f"/{a.slug}/f/{db.session.get(LeadForm, ids['form_id']).code}",
        f"/{a.slug}/c/{course.code}",
        f"/{a.slug}/gb/{group_buy.code}",
        f"/{a.slug}/gb/{group_buy.code}/t/{team.code}",
        f"/{a.slug}/fs/{db.session.get(FlashSale, ids['flash_sale_id']).code}",
        f"/{a.slug}/me",
        f"/{a.slug}/j/{db.session.get(GroupInvite, ids['invite_id']).code}",
        f"/{a.slug}/g/{db.session.get(Group, ids['group_id']).code}",
        f"/{a.slug}/camp/{db.session.get(Camp, ids['camp_id']).code}",
        "/healthz",
    ]
    with statements() as sent:
        for path in paths:
            response = client.get(path)
            assert response.status_code < 400, (path, response.status_code)
            writes = [
                statement.split("\n")[0]
                for statement in sent
                if statement.lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")
            ]
            assert not writes, (path, writes)
