"""Signing up an institution and changing its settings."""

from __future__ import annotations

from zoneinfo import available_timezones

import phonenumbers
from flask_babel import lazy_gettext as _l
from sqlalchemy.exc import IntegrityError

from app import pagecache
from app.accounts import services as accounts
from app.accounts.models import Role, User
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.images import checked_image
from app.institutions import queries
from app.institutions.models import CURRENCIES, LOCALES, Institution, slug_problem
from app.notifications.services import queue_email
from app.tenancy import bound, institution_changed
from app.urls import external_url

SLUG_TAKEN = _l("This address is already taken. Try another one.")


def _check_choices(timezone: str, currency: str, locale: str) -> None:
    if timezone not in available_timezones():
        raise ServiceError(_l("Choose a time zone from the list."), field="timezone")
    if currency not in CURRENCIES:
        raise ServiceError(_l("Choose a currency from the list."), field="currency")
    if locale not in LOCALES:
        raise ServiceError(_l("Choose a language from the list."), field="locale")


def create_institution(
    *, name: str, slug: str, timezone: str, currency: str, locale: str
) -> Institution:
    problem = slug_problem(slug)
    if problem:
        raise ServiceError(problem, field="slug", code="slug_invalid")
    _check_choices(timezone, currency, locale)
    if queries.slug_taken(slug):
        raise ServiceError(SLUG_TAKEN, field="slug", code="slug_taken")
    institution = Institution(
        name=name.strip(), slug=slug, timezone=timezone, currency=currency, locale=locale
    )
    try:
        with db.session.begin_nested():
            db.session.add(institution)
    except IntegrityError as exc:  # taken by a concurrent signup
        raise ServiceError(SLUG_TAKEN, field="slug", code="slug_taken") from exc
    return institution


def sign_up(
    *,
    name: str,
    slug: str,
    timezone: str,
    currency: str,
    locale: str,
    owner_name: str,
    email: str,
    password: str,
) -> tuple[Institution, User]:
    """Create an institution and its owner, and welcome the owner by e-mail.

    Every check runs before the first row is written, and the caller commits only if this
    returns, so a refused signup leaves nothing behind.
    """
    institution = create_institution(
        name=name, slug=slug, timezone=timezone, currency=currency, locale=locale
    )
    owner = accounts.create_user(email, owner_name, password)
    db.session.flush()  # the institution's id, to bind it
    # A new tenant: its first rows are written as its own (row-level security checks
    # them), and flushed before the binding ends.
    with bound(institution):
        accounts.add_membership(institution, owner, Role.OWNER)
        queue_email(
            institution_id=institution.id,
            recipient=owner.email,
            template="welcome",
            context={
                "name": owner.name,
                "institution_name": institution.name,
                "action_url": external_url("institutions.home", institution_slug=institution.slug),
            },
            locale=institution.locale,
            dedupe_key=f"welcome:{owner.id}",
        )
        db.session.flush()
    return institution, owner


def update_settings(
    institution: Institution,
    *,
    name: str,
    timezone: str,
    currency: str,
    locale: str,
    country: str,
    contact_email: str | None,
    contact_phone: str | None,
    address: str | None,
) -> None:
    _check_choices(timezone, currency, locale)
    if country not in phonenumbers.SUPPORTED_REGIONS:
        raise ServiceError(_l("Choose a country or region from the list."), field="country")
    institution.name = name.strip()
    institution.country = country
    institution.timezone = timezone
    institution.currency = currency
    institution.locale = locale
    institution.contact_email = contact_email or None
    institution.contact_phone = contact_phone or None
    institution.address = (address or "").strip() or None
    institution.updated_at = utcnow()
    _pages_changed(institution)
    db.session.flush()


def _pages_changed(institution: Institution) -> None:
    """Every public page of the institution shows it: they are rendered anew."""
    institution_changed(institution)
    pagecache.changed(institution.id, pagecache.INSTITUTION)


def set_logo(institution: Institution, data: bytes, max_bytes: int) -> None:
    """Store a logo after checking that it really is an image (app.images)."""
    institution.logo_content_type = checked_image(data, max_bytes, field="logo")
    institution.logo = data
    institution.logo_updated_at = institution.updated_at = utcnow()
    _pages_changed(institution)
    db.session.flush()


def remove_logo(institution: Institution) -> None:
    institution.logo = None
    institution.logo_content_type = None
    institution.logo_updated_at = None
    institution.updated_at = utcnow()
    _pages_changed(institution)
    db.session.flush()
