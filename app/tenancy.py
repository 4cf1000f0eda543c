"""The current institution and lookups scoped to it.

Staff pages live under `/staff/<institution_slug>/...` and public pages under
`/<institution_slug>/...`; the blueprints made by `staff_blueprint` and `public_blueprint`
resolve the slug, check the signed-in user's membership (staff) and bind the institution to
the database session. A row of another institution is a 404, never a 403 that would confirm
it exists.
"""

from __future__ import annotations

from functools import wraps

from flask import Blueprint, abort, g
from flask_login import current_user
from sqlalchemy import Select, select

from app.db import TENANT_KEY
from app.extensions import db, login_manager


def current_institution():
    institution = g.get("institution")
    if institution is None:
        raise RuntimeError("no institution is bound to this request")
    return institution


def current_membership():
    return g.get("membership")


def bind_institution(institution) -> None:
    """Make `institution` the tenant of this request or job (and of the ORM safety net)."""
    g.institution = institution
    db.session.info[TENANT_KEY] = institution.id


def unbind_institution() -> None:
    g.pop("institution", None)
    g.pop("membership", None)
    db.session.info.pop(TENANT_KEY, None)


def scoped_select(model) -> Select:
    """`select(model)` limited to the current institution."""
    return select(model).where(model.institution_id == current_institution().id)


def get_or_404(model, row_id):
    """The row of `model` with this id if it belongs to the current institution, else 404."""
    try:
        row_id = int(row_id)
    except (TypeError, ValueError):
        abort(404)
    row = db.session.get(model, row_id)
    # db.session.get may answer from the identity map without a query, so the safety net
    # cannot be relied on here; check ownership explicitly.
    if row is None or row.institution_id != current_institution().id:
        abort(404)
    return row


def require_role(*roles: str):
    """Allow the view only to members whose role is one of `roles` (403 otherwise: the
    institution is the user's own, so nothing is revealed)."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            membership = current_membership()
            if membership is None or membership.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def institution_by_slug(slug: str):
    from app.institutions.models import Institution

    return db.session.scalar(select(Institution).where(Institution.slug == slug))


def staff_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under `/staff/<institution_slug>` that admits only members of it."""
    bp = Blueprint(name, import_name, url_prefix="/staff/<institution_slug>")

    @bp.url_value_preprocessor
    def pull_slug(endpoint, values):
        g.institution_slug = values.pop("institution_slug", None) if values else None

    @bp.before_request
    def admit_members_only():
        from app.accounts.queries import membership_of

        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        institution = institution_by_slug(g.institution_slug or "")
        membership = membership_of(current_user, institution) if institution else None
        if membership is None:
            abort(404)
        bind_institution(institution)
        g.membership = membership
        return None

    _add_slug_to_urls(bp)
    return bp


def public_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under `/<institution_slug>` for parents' pages: no login, the institution
    is bound from the URL."""
    bp = Blueprint(name, import_name, url_prefix="/<institution_slug>")

    @bp.url_value_preprocessor
    def pull_slug(endpoint, values):
        g.institution_slug = values.pop("institution_slug", None) if values else None

    @bp.before_request
    def bind_from_url():
        institution = institution_by_slug(g.institution_slug or "")
        if institution is None:
            abort(404)
        bind_institution(institution)

    _add_slug_to_urls(bp)
    return bp


def _add_slug_to_urls(bp: Blueprint) -> None:
    @bp.url_defaults
    def add_slug(endpoint, values):
        if "institution_slug" not in values and g.get("institution") is not None:
            values["institution_slug"] = g.institution.slug


def from_local(value):
    """A naive date-time typed in the institution's time zone, as an aware UTC value."""
    from datetime import UTC

    if value is None:
        return None
    return value.replace(tzinfo=current_institution().zone).astimezone(UTC)


def to_local(value):
    """An aware value as a naive date-time in the institution's time zone (for inputs)."""
    if value is None:
        return None
    return value.astimezone(current_institution().zone).replace(tzinfo=None)


def local_day_start(day):
    """Midnight of `day` in the institution's time zone (aware), for date filters."""
    from datetime import datetime, time

    return datetime.combine(day, time.min, tzinfo=current_institution().zone)
