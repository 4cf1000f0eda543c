"""Factory fixtures. Everything tenant-owned is made for a given institution."""

from __future__ import annotations

import itertools

import pytest

from app.accounts import services as accounts
from app.accounts.models import Role, User
from app.extensions import db
from app.institutions import services as institutions
from app.institutions.models import Institution

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


@pytest.fixture
def institution() -> Institution:
    institution = make_institution()
    db.session.commit()
    return institution


@pytest.fixture
def owner(institution) -> User:
    return make_member(institution, Role.OWNER)


def login(client, user: User, password: str = PASSWORD):
    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


@pytest.fixture
def owner_client(client, owner):
    login(client, owner)
    return client
