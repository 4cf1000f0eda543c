"""Signing in and out, rate limits, remember me and password reset."""

from __future__ import annotations

from datetime import timedelta

import time_machine

from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from tests.factories import PASSWORD, make_member
from tests.helpers import link_in, login


def test_login_with_any_email_case_lands_on_the_institution(client, institution, owner):
    response = client.post("/login", data={"email": owner.email.upper(), "password": PASSWORD})
    assert response.status_code == 302
    assert client.get("/").headers["Location"] == f"/staff/{institution.slug}/"


def test_wrong_password_is_a_clear_error(client, owner):
    response = client.post("/login", data={"email": owner.email, "password": "wrong-password"})
    assert response.status_code == 422
    assert "The e-mail or password is wrong." in response.get_data(as_text=True)
    unknown = client.post("/login", data={"email": "nobody@example.com", "password": "x" * 12})
    assert "The e-mail or password is wrong." in unknown.get_data(as_text=True)


def test_logout_ends_the_session(owner_client, institution):
    assert owner_client.post("/logout").status_code == 302
    response = owner_client.get(f"/staff/{institution.slug}/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_remember_me_sets_a_lasting_http_only_cookie(client, owner):
    response = client.post(
        "/login", data={"email": owner.email, "password": PASSWORD, "remember": "y"}
    )
    cookies = response.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("remember_token="))
    assert "HttpOnly" in remember and "Expires=" in remember


def test_login_is_rate_limited_per_account(client, owner):
    for n in range(5):
        response = client.post(
            "/login",
            data={"email": owner.email, "password": "bad"},
            environ_base={"REMOTE_ADDR": f"10.1.0.{n}"},
        )
        assert response.status_code == 422
    # Sixth try within the minute, even from another address and with the right password.
    response = client.post(
        "/login",
        data={"email": owner.email, "password": PASSWORD},
        environ_base={"REMOTE_ADDR": "10.1.1.1"},
    )
    assert response.status_code == 429
    assert "Too many attempts" in response.get_data(as_text=True)


def test_login_is_rate_limited_per_address(client):
    statuses = [
        client.post(
            "/login",
            data={"email": f"u{n}@example.com", "password": "x" * 12},
            environ_base={"REMOTE_ADDR": "10.2.0.1"},
        ).status_code
        for n in range(21)
    ]
    assert statuses[:20] == [422] * 20 and statuses[20] == 429


def test_password_reset_link_works_once(client, owner, mail_server):
    response = client.post("/password/forgot", data={"email": owner.email})
    assert response.status_code == 302
    run_burst()
    [mail] = mail_server.to(owner.email)
    link = link_in(mail)
    assert link.startswith("/password/reset/")

    response = client.post(
        link, data={"password": "a-brand-new-password", "confirm": "a-brand-new-password"}
    )
    assert response.status_code == 302
    client.post("/logout")
    login(client, owner, "a-brand-new-password")
    client.post("/logout")

    reused = client.get(link)
    assert reused.status_code == 410
    assert "invalid or has already been used" in reused.get_data(as_text=True)


def test_password_reset_link_expires(client, owner, mail_server):
    client.post("/password/forgot", data={"email": owner.email})
    run_burst()
    link = link_in(mail_server.to(owner.email)[0])
    with time_machine.travel(utcnow() + timedelta(hours=1, minutes=1)):
        response = client.post(
            link, data={"password": "a-brand-new-password", "confirm": "a-brand-new-password"}
        )
    assert response.status_code == 410
    assert "expired" in response.get_data(as_text=True)
    login(client, owner)  # the old password still works


def test_password_reset_for_unknown_email_says_the_same_and_sends_nothing(client, mail_server):
    response = client.post(
        "/password/forgot", data={"email": "nobody@example.com"}, follow_redirects=True
    )
    assert "If an account exists for nobody@example.com" in response.get_data(as_text=True)
    run_burst()
    assert mail_server.messages == []


def test_changing_the_password_signs_out_other_sessions(app, institution, owner, mail_server):
    other_device = app.test_client()
    login(other_device, owner)
    this_device = app.test_client()
    this_device.post("/password/forgot", data={"email": owner.email})
    run_burst()
    this_device.post(
        link_in(mail_server.to(owner.email)[0]),
        data={"password": "a-brand-new-password", "confirm": "a-brand-new-password"},
    )
    response = other_device.get(f"/staff/{institution.slug}/")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_reset_form_errors_change_nothing(client, owner, mail_server):
    client.post("/password/forgot", data={"email": owner.email})
    run_burst()
    link = link_in(mail_server.to(owner.email)[0])
    short = client.post(link, data={"password": "short", "confirm": "short"})
    differ = client.post(link, data={"password": "long-enough-1", "confirm": "long-enough-2"})
    assert short.status_code == differ.status_code == 422
    assert "The passwords differ." in differ.get_data(as_text=True)
    login(client, owner)


def test_user_with_several_institutions_switches_between_them(client, institution, owner):
    from app.accounts.models import Role
    from app.accounts.services import add_membership
    from tests.factories import make_institution

    second = make_institution()
    add_membership(second, owner, Role.STAFF)
    db.session.commit()
    login(client, owner)
    page = client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    assert "Switch institution" in page and f"/staff/{second.slug}/" in page
    assert client.get(f"/staff/{second.slug}/").status_code == 200
    other = make_member(institution)
    assert other  # a plain staff member of one institution sees no switcher
    client.post("/logout")
    login(client, other)
    assert "Switch institution" not in client.get(f"/staff/{institution.slug}/").get_data(
        as_text=True
    )
