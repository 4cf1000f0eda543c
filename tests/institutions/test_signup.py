from __future__ import annotations

from sqlalchemy import func, select

from app.accounts.models import Membership, Role, User
from app.devtools.mailsink import body_text
from app.extensions import db
from app.institutions.models import Institution
from app.jobs import run_burst
from app.notifications.models import OutboxMessage

SIGNUP = {
    "name": "Bright Minds Tutoring",
    "slug": "bright-minds",
    "timezone": "Asia/Shanghai",
    "currency": "CNY",
    "locale": "en",
    "owner_name": "Li Wei",
    "email": "Li.Wei@Example.com",
    "password": "a-long-password",
    "confirm": "a-long-password",
    "accept_terms": "y",
}


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_signup_creates_institution_owner_and_welcome_email(client, mail_server):
    response = client.post("/signup", data=SIGNUP)

    assert response.status_code == 302
    assert response.headers["Location"] == "/staff/bright-minds/"
    institution = db.session.scalar(select(Institution).where(Institution.slug == "bright-minds"))
    assert (institution.timezone, institution.currency, institution.locale) == (
        "Asia/Shanghai",
        "CNY",
        "en",
    )
    owner = db.session.scalar(select(User).where(User.email == "li.wei@example.com"))
    membership = db.session.scalar(select(Membership).where(Membership.user_id == owner.id))
    assert membership.institution_id == institution.id and membership.role == Role.OWNER
    # The owner is signed in and lands on the staff home.
    assert "Welcome, Li Wei" in client.get("/staff/bright-minds/").get_data(as_text=True)

    run_burst()
    [mail] = mail_server.to("li.wei@example.com")
    assert "Bright Minds Tutoring" in body_text(mail)
    assert "http://localhost/staff/bright-minds/" in body_text(mail)


def test_taken_slug_is_a_field_error_and_creates_nothing(client):
    client.post("/signup", data=SIGNUP)
    client.post("/logout")
    before = (count(Institution), count(User), count(OutboxMessage))

    response = client.post("/signup", data={**SIGNUP, "email": "other@example.com"})

    assert response.status_code == 422
    assert "This address is already taken" in response.get_data(as_text=True)
    assert (count(Institution), count(User), count(OutboxMessage)) == before


def test_taken_email_is_a_field_error_and_creates_nothing(client):
    client.post("/signup", data=SIGNUP)
    client.post("/logout")
    before = (count(Institution), count(User), count(OutboxMessage))

    response = client.post(
        "/signup", data={**SIGNUP, "slug": "another-school", "email": "LI.WEI@example.com "}
    )

    assert response.status_code == 422
    assert "An account with this e-mail already exists" in response.get_data(as_text=True)
    assert (count(Institution), count(User), count(OutboxMessage)) == before


def test_bad_signup_input_gets_field_errors(client):
    cases = {
        "slug": ["staff", "login", "ab", "Has Caps", "-dash", "a" * 49, "emoji-😀"],
        "timezone": ["Mars/Olympus", ""],
        "currency": ["XXX", "cny"],
        "locale": ["fr", "zh_TW"],
        "name": ["", "n" * 121],
        "email": ["not-an-email", "a@" + "b" * 260 + ".com"],
        "password": ["short"],
    }
    for n, (field, value) in enumerate((f, v) for f, values in cases.items() for v in values):
        data = {**SIGNUP, field: value}
        if field == "password":
            data["confirm"] = value
        # A new address per attempt keeps the signup rate limit out of this test.
        response = client.post("/signup", data=data, environ_base={"REMOTE_ADDR": f"10.0.0.{n}"})
        assert response.status_code == 422, (field, value)
    assert count(Institution) == 0 and count(User) == 0
