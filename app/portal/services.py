"""Signing a parent in to their own page, without a password."""

from __future__ import annotations

import logging
import secrets

from flask import current_app
from sqlalchemy import select

from app.contacts import queries as contact_queries
from app.contacts import services as contacts
from app.contacts.models import Contact
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.notifications import channels
from app.notifications import services as notifications
from app.notifications.models import Channel
from app.portal.models import SignInLink, hash_code
from app.tokens import LINK_INVALID
from app.urls import external_url

log = logging.getLogger(__name__)
SESSION_KEY = "parents"  # in the browser's session: {institution id: contact id}
AFTER_SIGN_IN = "after_sign_in"


def family_signed_in(institution, session) -> Contact | None:
    """The family this browser is signed in as at the institution (`session`: Flask's),
    if any: one family per institution, no password (a link from one of our messages or a
    one-time link)."""
    contact_id = session.get(SESSION_KEY, {}).get(str(institution.id))
    contact = db.session.get(Contact, contact_id) if contact_id else None
    if contact is None or contact.institution_id != institution.id:
        return None
    return contact


def sign_family_in(session, contact: Contact) -> None:
    families = dict(session.get(SESSION_KEY, {}))
    families[str(contact.institution_id)] = contact.id
    session[SESSION_KEY] = families
    session.permanent = True


def come_back_after_sign_in(session, path: str) -> None:
    """Where the family goes once signed in (a group's invitation, say), in the same
    browser: a one-time link opened there brings them back to it."""
    session[AFTER_SIGN_IN] = path


def where_after_sign_in(session) -> str | None:
    return session.pop(AFTER_SIGN_IN, None)


def sign_family_out(session, institution) -> None:
    families = dict(session.get(SESSION_KEY, {}))
    families.pop(str(institution.id), None)
    session[SESSION_KEY] = families


def send_sign_in_link(institution, phone: str, channel: Channel) -> SignInLink | None:
    """Send a one-time link to the family with this phone, by SMS or e-mail (the other one
    if the family cannot be reached on the one asked for). Nothing happens for a number we
    do not know, and the page says the same either way, so it cannot be used to find out
    who is a customer."""
    number = contacts.normalise_phone(institution, phone)
    contact = contact_queries.contact_by_phone(institution, number)
    if contact is None:
        return None
    reachable = []
    if channels.sms_configured(current_app.config):
        reachable.append(Channel.SMS)
    if contact.email:
        reachable.append(Channel.EMAIL)
    if not reachable:
        return None
    chosen = channel if channel in reachable else reachable[0]
    code = secrets.token_urlsafe(24)
    link = SignInLink(
        institution_id=institution.id,
        contact_id=contact.id,
        code_hash=hash_code(code),
        expires_at=utcnow() + current_app.config["SIGN_IN_LINK_MAX_AGE"],
    )
    db.session.add(link)
    db.session.flush()
    url = external_url("portal.sign_in_link", institution_slug=institution.slug, code=code)
    notifications.notify_contact(
        institution,
        contact,
        "sign_in_link",
        {"link": url},
        dedupe_key=f"sign-in:{link.id}",
        channels_=[chosen.value],
    )
    return link


def use_sign_in_link(institution, code: str) -> Contact:
    """The contact of a one-time link, which is spent by this call (under a row lock, so
    two clicks cannot both use it)."""
    link = db.session.scalar(
        select(SignInLink)
        .where(SignInLink.institution_id == institution.id, SignInLink.code_hash == hash_code(code))
        .with_for_update()
    )
    if link is None or not link.is_usable(utcnow()):
        raise ServiceError(LINK_INVALID, code="link_invalid")
    link.used_at = utcnow()
    db.session.flush()
    return db.session.get(Contact, link.contact_id)
