"""Users, passwords, sessions, memberships and invitations."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app import tokens
from app.accounts import queries
from app.accounts.models import Invitation, Membership, Role, User, new_auth_token
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.notifications.services import queue_email
from app.tenancy import institution_by_id
from app.tokens import LINK_EXPIRED, LINK_INVALID
from app.urls import external_url

log = logging.getLogger(__name__)
hasher = PasswordHasher()  # argon2id with the library's current recommended parameters

# A real hash to verify against when the e-mail is unknown, so that a login attempt takes
# the same time whether or not the account exists.
_DUMMY_HASH = hasher.hash("not-a-real-password")


# --- users and passwords -------------------------------------------------------------------


def normalise_email(email: str) -> str:
    return email.strip().lower()


def create_user(email: str, name: str, password: str) -> User:
    email = normalise_email(email)
    if queries.user_by_email(email) is not None:
        raise ServiceError(
            _l("An account with this e-mail already exists. Sign in instead."),
            field="email",
            code="email_taken",
        )
    user = User(email=email, name=name.strip(), password_hash=hasher.hash(password))
    try:
        with db.session.begin_nested():
            db.session.add(user)
    except IntegrityError as exc:  # the same e-mail signed up in a concurrent request
        raise ServiceError(
            _l("An account with this e-mail already exists. Sign in instead."),
            field="email",
            code="email_taken",
        ) from exc
    return user


def authenticate(email: str, password: str) -> User | None:
    """The active user with this e-mail and password, or None."""
    user = queries.user_by_email(email)
    if user is None:
        _verify(_DUMMY_HASH, password)
        return None
    if not _verify(user.password_hash, password) or not user.is_active:
        return None
    if hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hasher.hash(password)
    user.last_login_at = utcnow()
    db.session.flush()
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def set_password(user: User, password: str) -> None:
    """Change the password and sign the user out of every other session."""
    user.password_hash = hasher.hash(password)
    user.auth_token = new_auth_token()
    db.session.flush()


# --- signed tokens -------------------------------------------------------------------------


def _password_fingerprint(user: User) -> str:
    # The token names the current password hash, so it stops working once it has been used
    # (or once the password changes any other way): single use without storing the token.
    return user.password_hash[-16:]


def request_password_reset(email: str, locale: str) -> None:
    """E-mail a reset link if the account exists; say nothing either way (no enumeration)."""
    user = queries.user_by_email(email)
    if user is None or not user.is_active:
        log.info("password reset asked for an unknown e-mail")
        return
    token = tokens.sign("reset", {"u": user.id, "p": _password_fingerprint(user)})
    queue_email(
        institution_id=None,
        recipient=user.email,
        template="password_reset",
        context={
            "name": user.name,
            "action_url": external_url("accounts.reset_password", token=token),
            "hours": int(current_app.config["PASSWORD_RESET_MAX_AGE"].total_seconds() // 3600),
        },
        locale=locale,
        dedupe_key=f"password-reset:{user.id}:{secrets.token_hex(8)}",
    )


def user_for_reset_token(token: str) -> User:
    data = tokens.load("reset", token, current_app.config["PASSWORD_RESET_MAX_AGE"])
    user = db.session.get(User, data.get("u"))
    if user is None or not user.is_active or data.get("p") != _password_fingerprint(user):
        raise ServiceError(LINK_INVALID, code="link_invalid")
    return user


def reset_password(token: str, password: str) -> User:
    user = user_for_reset_token(token)
    set_password(user, password)
    return user


# --- memberships ---------------------------------------------------------------------------


def add_membership(institution, user: User, role: Role) -> Membership:
    membership = Membership(institution_id=institution.id, user=user, role=role)
    db.session.add(membership)
    db.session.flush()
    return membership


def change_role(membership: Membership, role: Role) -> None:
    if (
        membership.role == Role.OWNER
        and role != Role.OWNER
        and queries.owner_count(membership.institution_id) <= 1
    ):
        raise ServiceError(
            _l("An institution needs at least one owner. Make someone else an owner first."),
            field="role",
            code="last_owner",
        )
    membership.role = role
    db.session.flush()


def remove_member(membership: Membership) -> None:
    if membership.role == Role.OWNER and queries.owner_count(membership.institution_id) <= 1:
        raise ServiceError(_l("The last owner cannot be removed."), code="last_owner")
    db.session.delete(membership)
    db.session.flush()


# --- invitations ---------------------------------------------------------------------------


def roles_invitable_by(membership: Membership) -> list[Role]:
    """Owners invite admins and staff; admins invite staff."""
    return [Role.ADMIN, Role.STAFF] if membership.role == Role.OWNER else [Role.STAFF]


def invite_member(institution, inviter: Membership, email: str, role: Role) -> Invitation:
    """Invite someone by e-mail; asking again for a pending invitation re-sends it."""
    email = normalise_email(email)
    if role not in roles_invitable_by(inviter):
        raise ServiceError(_l("Your role cannot invite with this role."), field="role")
    existing_user = queries.user_by_email(email)
    if existing_user is not None and queries.membership_of(existing_user, institution):
        raise ServiceError(
            _l("This person is already a member."), field="email", code="already_member"
        )
    invitation = queries.pending_invitation_for(institution, email)
    if invitation is None:
        invitation = Invitation(
            institution_id=institution.id,
            email=email,
            role=role,
            invited_by_id=inviter.user_id,
            sent_count=0,
            expires_at=utcnow() + current_app.config["INVITATION_MAX_AGE"],
        )
        db.session.add(invitation)
    else:
        invitation.role = role
    _send_invitation(institution, invitation, inviter.user)
    return invitation


def resend_invitation(institution, invitation: Invitation, sender: User) -> None:
    if invitation.accepted_at is not None or invitation.revoked_at is not None:
        raise ServiceError(LINK_INVALID, code="not_pending")
    invitation.expires_at = utcnow() + current_app.config["INVITATION_MAX_AGE"]
    _send_invitation(institution, invitation, sender)


def _send_invitation(institution, invitation: Invitation, sender: User) -> None:
    invitation.sent_count += 1
    db.session.flush()
    token = tokens.sign(
        "invite", {"i": invitation.id, "n": invitation.sent_count, "t": institution.id}
    )
    queue_email(
        institution_id=institution.id,
        recipient=invitation.email,
        template="invitation",
        context={
            "institution_name": institution.name,
            "inviter_name": sender.name,
            "role": invitation.role.value,
            "action_url": external_url("accounts.accept_invitation", token=token),
            "days": current_app.config["INVITATION_MAX_AGE"].days,
        },
        locale=institution.locale,
        dedupe_key=f"invitation:{invitation.id}:{invitation.sent_count}",
    )


def revoke_invitation(invitation: Invitation) -> None:
    if invitation.accepted_at is None and invitation.revoked_at is None:
        invitation.revoked_at = utcnow()
        db.session.flush()


def institution_of_invitation(token: str):
    """The institution an invitation link is for (to bind before reading the invitation),
    or None for a link that is not one. Links sent before they named it are looked up."""
    try:
        data = tokens.load("invite", token, current_app.config["INVITATION_MAX_AGE"])
    except ServiceError:
        return None
    institution_id = data.get("t")
    if institution_id is None:
        with db.platform():
            institution_id = queries.institution_id_of_invitation(data.get("i"))
    return institution_by_id(institution_id) if institution_id else None


def invitation_for_token(token: str, now: datetime | None = None) -> Invitation:
    """The pending invitation a link names; a clear ServiceError for anything else."""
    data = tokens.load("invite", token, current_app.config["INVITATION_MAX_AGE"])
    invitation = db.session.get(Invitation, data.get("i"))
    if invitation is None or invitation.accepted_at or invitation.revoked_at:
        raise ServiceError(LINK_INVALID, code="link_invalid")
    if data.get("n") != invitation.sent_count:
        # An older e-mail of an invitation that was sent again: only the newest link works.
        raise ServiceError(LINK_INVALID, code="link_invalid")
    if invitation.is_expired(now or utcnow()):
        raise ServiceError(LINK_EXPIRED, code="link_expired")
    return invitation


def accept_invitation(invitation: Invitation, user: User) -> Membership:
    """Add `user` to the inviting institution; the invitation is used up."""
    if normalise_email(user.email) != invitation.email:
        raise ServiceError(
            _l(
                "This invitation was sent to %(email)s. Sign out and open the link again.",
                email=invitation.email,
            ),
            code="wrong_account",
        )
    membership = queries.membership_of(user, invitation.institution)
    if membership is None:
        membership = add_membership(invitation.institution, user, invitation.role)
    invitation.accepted_at = utcnow()
    invitation.accepted_by_id = user.id
    db.session.flush()
    return membership


def accept_invitation_as_new_user(invitation: Invitation, name: str, password: str) -> User:
    user = create_user(invitation.email, name, password)
    accept_invitation(invitation, user)
    return user
