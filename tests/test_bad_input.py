"""What people (and bots) type: line breaks, NUL, control characters, direction overrides,
very long text. Every public form answers 4xx or keeps a clean record, never a 500, and
what is kept can go into e-mail headers, SMS and CSV."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.campaigns.models import GroupBuy
from app.contacts.models import Contact, ContactTouch, Student
from app.courses.models import Course, CourseKind
from app.extensions import db
from app.institutions.models import Institution
from app.jobs import run_burst
from app.memberships.models import VipTier
from app.notifications.models import OutboxMessage, OutboxStatus
from tests.factories import make_course, make_form, make_group_buy
from tests.helpers import FAMILY, count, parent

BAD = [
    "Wang\nFang",
    "Wang\r\nBcc: someone@example.com",
    "Wang\x00Fang",
    "\u202egnaW\u202c Fang",
    "Bell\x07 Fang",
    "Tab\tFang",
    "\u2028Line\u2029Fang",
    "Fang" * 2000,
    "王芳 \U0001f600",
]
UNCLEAN = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


@pytest.fixture
def public_forms(institution, owner):
    lead_form, course, group_buy = (
        make_form(institution, consent_text=None),
        make_course(institution, capacity=50),
        make_group_buy(institution, team_size=20),
    )
    slug = institution.slug

    def posts(n: int, bad: str):
        phone = f"1390014{n:04d}"
        yield (
            f"/{slug}/f/{lead_form.code}?utm_source={bad[:50]}",
            {
                "parent_name": bad,
                "phone": phone,
                "child_name": bad,
                "subject": bad,
            },
        )
        yield (
            f"/{slug}/c/{course.code}",
            {
                **FAMILY,
                "parent_name": bad,
                "student_name": bad,
                "phone": phone,
                "lessons": course.lessons[0].id,
            },
        )
        yield f"/{slug}/gb/{group_buy.code}", parent(n, parent_name=bad, student_name=bad)
        yield f"/{slug}/me", {"phone": bad, "channel": "sms"}
        yield (
            "/signup",
            {
                "name": bad,
                "slug": f"bad-{n}",
                "timezone": "Asia/Shanghai",
                "currency": "CNY",
                "locale": "zh_CN",
                "owner_name": bad,
                "email": f"owner{n}@example.com",
                "password": "correct-horse-battery",
                "confirm": "correct-horse-battery",
            },
        )
        yield "/login", {"email": bad, "password": bad}
        yield "/password/forgot", {"email": bad}

    return posts


def test_every_public_form_answers_4xx_or_keeps_a_clean_record(client, public_forms):
    statuses = []
    for n, bad in enumerate(BAD):
        for path, data in public_forms(n, bad):
            response = client.post(path, data=data, environ_base={"REMOTE_ADDR": f"10.9.9.{n}"})
            assert response.status_code < 500, (path, repr(bad), response.status_code)
            statuses.append(response.status_code)
            client.delete_cookie("session")  # each attempt a new visitor (no signed-in owner)
    assert 302 in statuses and any(400 <= s < 500 for s in statuses)

    kept = [
        *db.session.scalars(select(Contact.parent_name)),
        *db.session.scalars(select(Student.name)),
        *db.session.scalars(select(Institution.name)),
        *db.session.scalars(select(User.name)),
        *db.session.scalars(
            select(ContactTouch.utm_source).where(ContactTouch.utm_source.is_not(None))
        ),
    ]
    assert count(Contact) >= len(BAD)  # the families were kept, cleaned
    assert [value for value in kept if UNCLEAN.search(value)] == []

    run_burst()  # every e-mail about them (new lead, registration, team) goes out
    assert count(OutboxMessage, OutboxMessage.status == OutboxStatus.FAILED) == 0


def test_a_nul_anywhere_in_a_request_is_a_400_that_changes_nothing(client, institution, lead_form):
    for path, data in [
        (f"/{institution.slug}/f/{lead_form.code}?utm_source=a%00b", {"parent_name": "A"}),
        (f"/{institution.slug}/f/{lead_form.code}", {"parent_name\x00": "A"}),
        (f"/{institution.slug}/f/{lead_form.code}%00", {}),
    ]:
        assert client.post(path, data=data).status_code in (400, 404), path
    assert client.get(f"/{institution.slug}/f/{lead_form.code}?ref=%00").status_code == 400
    assert count(Contact) == 0


# --- money ---------------------------------------------------------------------------------------

NOT_AMOUNTS = ["sNaN", "NaN", "-NaN", "Infinity", "-inf", "1e999"]


@pytest.fixture
def money_forms(institution):
    """Every staff form with an amount of money: its URL, a valid submission, its money
    fields, and the model it would write."""
    course = make_course(institution, kind=CourseKind.REGULAR)
    base = f"/staff/{institution.slug}"
    return {
        "vip_tier": (
            f"{base}/vip/tiers/new",
            {"name": "Gold", "price": "999", "duration_days": "365", "key": "k" * 22},
            ["price"],
            VipTier,
        ),
        "course": (
            f"{base}/courses/new",
            {"title": "Piano taster", "kind": "trial", "price": "0", "capacity": "6"},
            ["price"],
            Course,
        ),
        "group_buy": (
            f"{base}/campaigns/new",
            {
                "title": "Summer group buy",
                "course_id": course.id,
                "list_price": "499",
                "group_price": "199",
                "leader_price": "149",
                "team_size": "3",
                "team_hours": "24",
                "starts_at": "2030-06-01T10:00",
                "ends_at": "2030-06-20T10:00",
                "per_contact_limit": "1",
            },
            ["list_price", "group_price", "leader_price"],
            GroupBuy,
        ),
    }


@pytest.mark.parametrize("form", ["vip_tier", "course", "group_buy"])
def test_a_money_field_refuses_what_is_not_a_finite_amount(owner_client, money_forms, form):
    """Python's Decimal reads "sNaN", "NaN" and "Infinity", and WTForms' NumberRange met a
    signalling NaN with a ValueError: a 500. Each is a field error, and nothing is kept."""
    url, valid, fields, model = money_forms[form]
    before = count(model)
    for field in fields:
        for value in NOT_AMOUNTS:
            response = owner_client.post(url, data={**valid, field: value})
            assert response.status_code == 422, (field, value, response.status_code)
            page = response.get_data(as_text=True)
            error = page[page.index(f'name="{field}"') :]
            assert 'class="field-error"' in error[: error.index("</div>")], (field, value)
    assert count(model) == before
    assert owner_client.post(url, data=valid).status_code == 302  # the valid one is kept
    assert count(model) == before + 1
