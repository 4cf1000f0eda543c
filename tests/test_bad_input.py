"""What people (and bots) type: line breaks, NUL, control characters, direction overrides,
very long text. Every public form answers 4xx or keeps a clean record, never a 500, and
what is kept can go into e-mail headers, SMS and CSV."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from app.accounts.models import User
from app.contacts.models import Contact, ContactTouch, Student
from app.extensions import db
from app.institutions.models import Institution
from app.jobs import run_burst
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
