"""Inviting staff by e-mail, roles, and removing members."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from app.accounts.models import Invitation, Membership, Role, User
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from tests.factories import make_member, make_user
from tests.helpers import link_in, login


def invite(client, institution, email, role="staff"):
    return client.post(
        f"/staff/{institution.slug}/members/invite", data={"email": email, "role": role}
    )


def membership(institution, user) -> Membership | None:
    return db.session.scalar(
        select(Membership).where(
            Membership.institution_id == institution.id, Membership.user_id == user.id
        )
    )


def test_invited_newcomer_sets_a_password_and_joins(
    client, owner_client, institution, mail_server, app
):
    assert invite(owner_client, institution, "Teacher@Example.com").status_code == 302
    run_burst()
    [mail] = mail_server.to("teacher@example.com")
    assert institution.name in mail["Subject"]
    link = link_in(mail)

    newcomer = app.test_client()
    page = newcomer.get(link)
    assert page.status_code == 200 and "teacher@example.com" in page.get_data(as_text=True)
    response = newcomer.post(
        link,
        data={"name": "Ms Zhang", "password": "teacher-password", "confirm": "teacher-password"},
    )
    assert response.headers["Location"] == f"/staff/{institution.slug}/"
    user = db.session.scalar(select(User).where(User.email == "teacher@example.com"))
    assert membership(institution, user).role == Role.STAFF
    assert newcomer.get(f"/staff/{institution.slug}/").status_code == 200

    # The link is used up.
    assert app.test_client().get(link).status_code == 410


def test_existing_user_signs_in_and_accepts(owner_client, institution, mail_server, app):
    existing = make_user("coach@example.com")
    db.session.commit()
    invite(owner_client, institution, "coach@example.com", "admin")
    run_burst()
    link = link_in(mail_server.to("coach@example.com")[0])

    guest = app.test_client()
    assert "Sign in to accept" in guest.get(link).get_data(as_text=True)
    login(guest, existing)
    assert guest.post(link).status_code == 302
    assert membership(institution, existing).role == Role.ADMIN


def test_invitation_for_someone_else_is_refused_while_signed_in(
    owner_client, institution, mail_server, app
):
    invite(owner_client, institution, "someone@example.com")
    run_burst()
    link = link_in(mail_server.to("someone@example.com")[0])
    intruder = make_user("intruder@example.com")
    db.session.commit()
    other = app.test_client()
    login(other, intruder)
    assert "Sign out and open the link again" in other.get(link).get_data(as_text=True)
    other.post(link)
    assert membership(institution, intruder) is None


def test_expired_revoked_and_superseded_links_are_refused(
    owner_client, institution, mail_server, app
):
    invite(owner_client, institution, "late@example.com")
    run_burst()
    first_link = link_in(mail_server.to("late@example.com")[0])
    with time_machine.travel(utcnow() + timedelta(days=8)):
        expired = app.test_client().get(first_link)
    assert expired.status_code == 410 and "expired" in expired.get_data(as_text=True)

    invitation = db.session.scalar(select(Invitation).where(Invitation.email == "late@example.com"))
    owner_client.post(f"/staff/{institution.slug}/invitations/{invitation.id}/resend")
    run_burst()
    second_link = link_in(mail_server.to("late@example.com")[1])
    assert app.test_client().get(first_link).status_code == 410  # superseded
    assert app.test_client().get(second_link).status_code == 200

    owner_client.post(f"/staff/{institution.slug}/invitations/{invitation.id}/revoke")
    assert app.test_client().get(second_link).status_code == 410
    assert app.test_client().get("/invite/not-a-token").status_code == 410


def test_inviting_a_member_or_a_bad_address_is_a_field_error(owner_client, institution, owner):
    again = invite(owner_client, institution, owner.email)
    assert again.status_code == 422
    assert "already a member" in again.get_data(as_text=True)
    bad = invite(owner_client, institution, "not an e-mail")
    assert bad.status_code == 422
    assert db.session.scalars(select(Invitation)).all() == []


def test_admins_invite_staff_but_not_admins(client, institution):
    admin = make_member(institution, Role.ADMIN)
    login(client, admin)
    assert invite(client, institution, "a@example.com", "admin").status_code == 422
    assert invite(client, institution, "s@example.com", "staff").status_code == 302


def test_staff_cannot_invite_or_change_roles(client, institution, owner):
    staff = make_member(institution)
    login(client, staff)
    assert invite(client, institution, "x@example.com").status_code == 403
    owner_membership = membership(institution, owner)
    response = client.post(
        f"/staff/{institution.slug}/members/{owner_membership.id}/role", data={"role": "staff"}
    )
    assert response.status_code == 403
    assert membership(institution, owner).role == Role.OWNER


def test_owner_changes_roles_but_never_removes_the_last_owner(owner_client, institution, owner):
    staff = make_member(institution)
    staff_membership = membership(institution, staff)
    base = f"/staff/{institution.slug}/members"

    owner_client.post(f"{base}/{staff_membership.id}/role", data={"role": "admin"})
    assert membership(institution, staff).role == Role.ADMIN
    bad = owner_client.post(
        f"{base}/{staff_membership.id}/role", data={"role": "emperor"}, follow_redirects=True
    )
    assert "Choose a role from the list." in bad.get_data(as_text=True)

    own = membership(institution, owner)
    page = owner_client.post(
        f"{base}/{own.id}/role", data={"role": "staff"}, follow_redirects=True
    ).get_data(as_text=True)
    assert "at least one owner" in page
    page = owner_client.post(f"{base}/{own.id}/remove", follow_redirects=True).get_data(
        as_text=True
    )
    assert "The last owner cannot be removed." in page
    assert membership(institution, owner).role == Role.OWNER

    owner_client.post(f"{base}/{staff_membership.id}/remove")
    assert membership(institution, staff) is None


def test_removed_member_loses_access_at_once(app, owner_client, institution):
    staff = make_member(institution)
    staff_client = app.test_client()
    login(staff_client, staff)
    assert staff_client.get(f"/staff/{institution.slug}/").status_code == 200
    owner_client.post(
        f"/staff/{institution.slug}/members/{membership(institution, staff).id}/remove"
    )
    assert staff_client.get(f"/staff/{institution.slug}/").status_code == 404
