"""Group buys for tests, and parents opening and joining teams from the public pages."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.campaigns import services
from app.campaigns.models import CampaignStatus, GroupBuy, Team, TeamMember
from app.courses.models import CourseKind
from app.db import utcnow
from app.extensions import db
from app.tenancy import bind_institution, unbind_institution
from tests.checkout import VISA
from tests.courses.conftest import make_course


def make_group_buy(institution, team_size: int = 3, team_hours: int = 24, **values) -> GroupBuy:
    """A committed, published group buy of a regular course with two upcoming lessons."""
    course = make_course(
        institution,
        starts=[utcnow() + timedelta(days=10), utcnow() + timedelta(days=17)],
        kind=CourseKind.REGULAR,
        price_amount=49900,
    )
    bind_institution(institution)
    fields = {
        "title": "Summer maths group buy",
        "description": "Eight lessons at the group price.",
        "course_id": course.id,
        "list_price_amount": 49900,
        "group_price_amount": 19900,
        "leader_price_amount": None,
        "team_size": team_size,
        "team_hours": team_hours,
        "starts_at": utcnow() - timedelta(hours=1),
        "ends_at": utcnow() + timedelta(days=7),
        "team_limit": None,
        "per_contact_limit": 1,
        **values,
    }
    group_buy = services.save_group_buy(institution, None, **fields)
    group_buy.status = CampaignStatus.PUBLISHED
    group_buy.published_at = utcnow()
    db.session.flush()
    unbind_institution()
    db.session.commit()
    return group_buy


def parent(n: int, **overrides) -> dict:
    return {
        "parent_name": f"Parent {n}",
        "phone": f"1390013{n:04d}",
        "student_name": f"Child {n}",
        "email": f"parent{n}@example.com",
        "consent": "y",
        "card_number": VISA,
        "card_expiry": "12/30",
        "card_cvc": "123",
        **overrides,
    }


def open_team(client, institution, group_buy: GroupBuy, n: int = 1, **overrides):
    return client.post(
        f"/{institution.slug}/gb/{group_buy.code}",
        data=parent(n, **overrides),
        environ_base={"REMOTE_ADDR": f"10.40.{n // 250}.{n % 250}"},
    )


def join_team(client, institution, group_buy: GroupBuy, team: Team, n: int, **overrides):
    return client.post(
        f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}",
        data=parent(n, **overrides),
        environ_base={"REMOTE_ADDR": f"10.40.{n // 250}.{n % 250}"},
    )


def only_team(group_buy: GroupBuy) -> Team:
    return db.session.scalars(select(Team).where(Team.group_buy_id == group_buy.id)).one()


def members(team: Team) -> list[TeamMember]:
    return list(
        db.session.scalars(
            select(TeamMember).where(TeamMember.team_id == team.id).order_by(TeamMember.id)
        )
    )
