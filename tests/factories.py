"""Factories: every row a test needs, made through the same services the app uses, and
the fixtures built on them. Everything tenant-owned is made for a given institution, inside
`bound(institution)` as a request or a job would be. (Loaded as a pytest plugin by
tests/conftest.py; tests import the functions from here.)"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, time, timedelta

import pytest

from app.accounts import services as accounts
from app.accounts.models import Role, User
from app.campaigns import services as campaigns
from app.campaigns.models import CampaignStatus, FlashSale, GroupBuy
from app.contacts import services as contacts
from app.contacts.models import SourceKind
from app.courses import services as courses
from app.courses.models import Course, CourseKind
from app.db import utcnow
from app.extensions import db
from app.institutions import services as institutions
from app.institutions.models import Institution
from app.leads import services as leads
from app.leads.models import Lead, LeadForm
from app.tenancy import bound

PASSWORD = "correct-horse-battery"  # noqa: S105
_counter = itertools.count(1)


def make_institution(
    slug: str | None = None, locale: str = "en", timezone: str = "Asia/Shanghai"
) -> Institution:
    n = next(_counter)
    institution = institutions.create_institution(
        name=f"School {n}",
        slug=slug or f"school-{n}",
        timezone=timezone,
        currency="CNY",
        locale=locale,
    )
    db.session.flush()
    return institution


def make_user(email: str | None = None, name: str | None = None) -> User:
    n = next(_counter)
    return accounts.create_user(email or f"user{n}@example.com", name or f"User {n}", PASSWORD)


def make_member(
    institution: Institution, role: Role = Role.STAFF, email: str | None = None
) -> User:
    user = make_user(email)
    accounts.add_membership(institution, user, role)
    db.session.commit()
    return user


def local_time(institution, days: int, at: time = time(19, 0)) -> datetime:
    """`at` on the day `days` from today, in the institution's time zone, as UTC: lessons
    at a chosen hour, so that no test depends on the hour it runs at."""
    today = datetime.now(institution.zone).date()
    return datetime.combine(today + timedelta(days=days), at, tzinfo=institution.zone).astimezone(
        UTC
    )


def make_course(
    institution,
    starts: list[datetime] | None = None,
    capacity: int = 10,
    kind: CourseKind = CourseKind.TRIAL,
    price_amount: int = 0,
) -> Course:
    """A committed course with a lesson at each of `starts` (default: one in three days,
    at 19:00 local time)."""
    with bound(institution):
        course = courses.save_course(
            institution,
            None,
            title="Maths Olympiad trial",
            kind=kind,
            capacity=capacity,
            price_amount=price_amount,
        )
        for starts_at in starts or [local_time(institution, days=3)]:
            courses.add_lesson(course, starts_at=starts_at, duration_minutes=60, place="Room 3")
        db.session.commit()
    return course


def make_group_buy(institution, team_size: int = 3, team_hours: int = 24, **values) -> GroupBuy:
    """A committed, published group buy of a regular course with two upcoming lessons."""
    course = make_course(
        institution,
        starts=[local_time(institution, days=10), local_time(institution, days=17)],
        kind=CourseKind.REGULAR,
        price_amount=49900,
    )
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
    with bound(institution):
        group_buy = campaigns.save_group_buy(institution, None, **fields)
        group_buy.status = CampaignStatus.PUBLISHED
        group_buy.published_at = utcnow()
        db.session.commit()
    return group_buy


def make_flash_sale(institution, publish: bool = True, **values) -> FlashSale:
    """A committed flash sale (published unless told not to) of a regular course with an
    upcoming lesson: 5 seats at ¥99 (list ¥499), live from an hour ago for a day."""
    course = make_course(
        institution,
        starts=[local_time(institution, days=10)],
        kind=CourseKind.REGULAR,
        price_amount=49900,
        capacity=500,
    )
    fields = {
        "title": "寒假营秒杀",
        "description": "Five seats of the winter camp at a special price.",
        "course_id": course.id,
        "list_price_amount": 49900,
        "sale_price_amount": 9900,
        "stock": 5,
        "starts_at": utcnow() - timedelta(hours=1),
        "ends_at": utcnow() + timedelta(days=1),
        "per_family_limit": 1,
        "pay_minutes": 10,
        **values,
    }
    with bound(institution):
        sale = campaigns.save_flash_sale(institution, None, **fields)
        if publish:
            campaigns.publish_flash_sale(institution, sale)
        db.session.commit()
    return sale


def make_form(institution, **overrides) -> LeadForm:
    """A committed, open lead form with built-in, choice and multi-choice questions."""
    values = dict(
        title="Spring open day",
        intro="Meet our teachers",
        fields=[
            *leads.default_fields(),
            {"key": "subject", "required": True, "label": ""},
            {
                "key": "custom_1",
                "kind": "single_choice",
                "label": "Best day",
                "choices": ["Saturday", "Sunday"],
                "required": False,
            },
            {
                "key": "custom_2",
                "kind": "multi_choice",
                "label": "Interests",
                "choices": ["Maths", "Art", "Music"],
                "required": False,
            },
        ],
        consent_text="I agree to be contacted about courses.",
        thank_you_message=None,
        redirect_url=None,
        is_open=True,
        closes_at=None,
        submission_cap=None,
    )
    values.update(overrides)
    with bound(institution):
        form = leads.save_form(institution, None, **values)
        db.session.commit()
    return form


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def institution() -> Institution:
    institution = make_institution()
    db.session.commit()
    return institution


@pytest.fixture
def tenant(institution):
    """The test's institution, bound for the whole test as a request or a job binds it."""
    with bound(institution):
        yield institution


@pytest.fixture
def owner(institution) -> User:
    return make_member(institution, Role.OWNER)


@pytest.fixture
def owner_client(client, owner):
    from tests.helpers import login

    login(client, owner)
    return client


@pytest.fixture
def lead_form(institution, owner) -> LeadForm:
    return make_form(institution)


def make_lead(institution, phone: str = "13800138000", name: str = "Wang Fang") -> Lead:
    """A committed new lead of a family that arrived through a form."""
    with bound(institution):
        contact, _ = contacts.find_or_create_contact(
            institution,
            phone=phone,
            details=contacts.ContactDetails(parent_name=name),
            touch=contacts.Touch(SourceKind.FORM),
        )
        lead = leads.create_lead(institution, contact)
        db.session.commit()
    return lead
