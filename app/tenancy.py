"""The institution a request or a job works for (its tenant), and lookups scoped to it.

There is one way to work for an institution: inside `bound(institution)`. While it is
bound, `current_institution()` returns it and the ORM safety net (`app.db`) filters every
SELECT of a tenant-owned class to it. A request binds the institution its URL names (the
blueprints below) until the request ends; a job binds the institution whose id is its
first argument (`app.jobs.job`) until the job ends. Below the view layer nothing reads the
binding: services and queries are given the institution as their first argument.

Staff pages live under `/staff/<institution_slug>/...` and public pages under
`/<institution_slug>/...`. A row of another institution is a 404, never a 403 that would
confirm it exists.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, suppress
from datetime import datetime
from functools import wraps
from typing import Protocol

import redis
from flask import Blueprint, Flask, abort, current_app, g
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.orm import make_transient_to_detached

from app.db import TENANT_KEY, USER_KEY, after_commit
from app.extensions import db, login_manager, redis_connection

# How staff pages find the signed-in user's membership of an institution; the accounts
# domain provides it (create_app registers it), so this core module imports no domain.
_membership_loader: Callable | None = None


def set_membership_loader(loader: Callable) -> None:
    global _membership_loader
    _membership_loader = loader


def current_institution():
    """The bound institution; RuntimeError outside `bound()`."""
    institution = g.get("institution")
    if institution is None:
        raise RuntimeError("no institution is bound to this request or job")
    return institution


def bound_institution():
    """The bound institution, or None (pages outside any institution)."""
    return g.get("institution")


def current_membership():
    return g.get("membership")


@contextmanager
def bound(institution) -> Iterator:
    """Work for `institution` until the block ends, then go back to what was bound before
    (nothing, or an outer binding). The database session's transactions name it to
    PostgreSQL, whose row-level security then admits only its rows."""
    previous = g.get("institution"), db.session.info.get(TENANT_KEY)
    g.institution = institution
    db.set_row_context(TENANT_KEY, institution.id)
    try:
        yield institution
    finally:
        if previous[0] is None:
            g.pop("institution", None)
        else:
            g.institution = previous[0]
        db.set_row_context(TENANT_KEY, previous[1])


def user_loader(find_user: Callable) -> Callable:
    """Flask-Login's loader: the user `find_user` finds by the session's token, named to
    the database too (row-level security admits a user's own memberships of every
    institution, for the institution switcher)."""

    def load(token: str):
        user = find_user(token)
        if user is not None:
            db.set_row_context(USER_KEY, user.id)
        return user

    return load


def bind_request(institution) -> None:
    """`bound(institution)` for the rest of the request: the binding is left when the
    request's app context ends (init_app)."""
    scope = g.get("_tenant_scope")
    if scope is None:
        scope = g._tenant_scope = ExitStack()
    scope.enter_context(bound(institution))


def init_app(app: Flask) -> None:
    @app.teardown_appcontext
    def leave_request_binding(exc: BaseException | None) -> None:
        scope = g.pop("_tenant_scope", None)
        if scope is not None:
            scope.close()


def institution_by_slug(slug: str):
    from app.institutions.models import Institution

    return db.session.scalar(select(Institution).where(Institution.slug == slug))


_PUBLIC_COLUMNS = None  # the Institution columns a public page reads (all but the logo)


class CopiesInMemory(Protocol):
    """Where a web process keeps the public copies of institutions that its requests read,
    for as long as it knows them unchanged."""

    generation: int  # changes noticed so far: read before reading a copy to keep

    def institution_copy(self, slug: str) -> dict | None: ...

    def keep_institution_copy(self, slug: str, columns: dict, generation: int) -> None: ...


# app.pagecache provides it (it hears of every change within milliseconds, and knows when
# it cannot), so this core module imports nothing above it; without one, each request
# reads the copy in Redis.
_copies_in_memory: CopiesInMemory | None = None


def set_copies_in_memory(copies: CopiesInMemory | None) -> None:
    global _copies_in_memory
    _copies_in_memory = copies


def institution_for_public_pages(slug: str):
    """The institution of a public URL, without a database query where a copy is kept: in
    this process's memory (see `set_copies_in_memory`), else in Redis for
    INSTITUTION_CACHE_SECONDS (forgotten when the institution changes); a shared link's
    pages are served without a database query (app.pagecache). The copy carries the
    columns but not the logo's bytes, and joins the session as a row already loaded, so
    relationships and the logo load on first use as usual."""
    memory = _copies_in_memory
    columns = memory.institution_copy(slug) if memory is not None else None
    if columns is not None:
        return _loaded(columns)
    since = memory.generation if memory is not None else 0  # before what it reads
    try:
        columns = _copy_in_redis(slug)
        changes = None if columns is not None else _changes_seen(slug)  # before the row
    except redis.RedisError:  # then the row, and no copy kept
        columns = changes = None
    if columns is not None:
        institution = _loaded(columns)
    else:
        institution = institution_by_slug(slug)
        if institution is None:
            return None
        columns = {name: getattr(institution, name) for name in _public_columns()}
        if changes is not None:
            _keep_copy_in_redis(slug, columns, changes)
    if memory is not None:
        memory.keep_institution_copy(slug, columns, since)
    return institution


def _public_columns() -> list[str]:
    from app.institutions.models import Institution

    global _PUBLIC_COLUMNS
    if _PUBLIC_COLUMNS is None:
        _PUBLIC_COLUMNS = [c.key for c in Institution.__mapper__.column_attrs if c.key != "logo"]
    return _PUBLIC_COLUMNS


def _copy_key(slug: str) -> str:
    return f"institution:{{{slug}}}"  # one Redis Cluster slot with its change count


def _changes_key(slug: str) -> str:
    """How many times the institution was changed (`institution_changed`): a copy read
    from the database is kept in Redis only if it is still the number read before."""
    return f"institution:{{{slug}}}:changes"


# The copy is written only if no change was committed since its row was read: else a
# request that read the row just before a change would keep the old one, after the change
# had deleted it, for INSTITUTION_CACHE_SECONDS.
_KEEP_IF_UNCHANGED = """
if (redis.call('GET', KEYS[2]) or '') == ARGV[2] then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[3])
end
"""


def _changes_seen(slug: str) -> str:
    """The institution's change count as Redis has it ('' for none). Raises
    redis.RedisError."""
    seen = redis_connection.client.get(_changes_key(slug))
    return seen.decode() if seen is not None else ""


def _keep_copy_in_redis(slug: str, columns: dict, changes: str) -> None:
    text = json.dumps(columns, default=lambda value: value.isoformat())
    seconds = current_app.config["INSTITUTION_CACHE_SECONDS"]
    with suppress(redis.RedisError):  # then the next request reads the row again
        redis_connection.script(_KEEP_IF_UNCHANGED)(
            keys=[_copy_key(slug), _changes_key(slug)], args=[text, changes, seconds]
        )


def _copy_in_redis(slug: str) -> dict | None:
    """The columns of the institution's copy in Redis, or None. Raises redis.RedisError."""
    cached = redis_connection.client.get(_copy_key(slug))
    if cached is None:
        return None
    columns = json.loads(cached)
    for name in ("created_at", "updated_at", "logo_updated_at"):
        if columns.get(name):
            columns[name] = datetime.fromisoformat(columns[name])
    return columns


def _loaded(columns: dict):
    """The institution of a copy's columns, in the session as a row already loaded."""
    from app.institutions.models import Institution

    institution = Institution(**columns)
    make_transient_to_detached(institution)
    db.session.add(institution)  # no SQL: it is known to be in the database as it is
    return institution


def public_institution_id(slug: str) -> int | None:
    """The id of the institution at this public address if its copy is in Redis (see
    `institution_for_public_pages`), else None. Raises redis.RedisError."""
    columns = _copy_in_redis(slug)
    return columns["id"] if columns is not None else None


def institution_changed(institution) -> None:
    """Forget the public pages' copy of the institution once the transaction commits."""

    slug = institution.slug
    after_commit(db.session(), lambda: _forget_copy(slug))


def _forget_copy(slug: str) -> None:
    """Delete the institution's copy in Redis and count the change, so a copy read before
    it is not put back."""
    with suppress(redis.RedisError):  # else it expires by itself
        pipe = redis_connection.client.pipeline(transaction=True)
        pipe.incr(_changes_key(slug))
        # (outlives any read in flight by far; expired, it reads as a change too)
        pipe.expire(_changes_key(slug), 24 * 3600)
        pipe.delete(_copy_key(slug))
        pipe.execute()


def institution_by_id(institution_id: int):
    from app.institutions.models import Institution

    return db.session.get(Institution, institution_id)


def get_or_404(model, row_id):
    """The row of `model` with this id if it belongs to the bound institution, else 404."""
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


def staff_blueprint(name: str, import_name: str) -> Blueprint:
    """A blueprint under `/staff/<institution_slug>` that admits only members of it."""
    bp = Blueprint(name, import_name, url_prefix="/staff/<institution_slug>")

    @bp.url_value_preprocessor
    def pull_slug(endpoint, values):
        g.institution_slug = values.pop("institution_slug", None) if values else None

    @bp.before_request
    def admit_members_only():
        if not current_user.is_authenticated:
            return login_manager.unauthorized()
        institution = institution_by_slug(g.institution_slug or "")
        if institution is None:
            abort(404)
        bind_request(institution)  # first: the membership is one of its rows
        membership = _membership_loader(current_user, institution)
        if membership is None:
            abort(404)
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
        institution = institution_for_public_pages(g.institution_slug or "")
        if institution is None:
            abort(404)
        bind_request(institution)

    _add_slug_to_urls(bp)
    return bp


def requested_slug() -> str | None:
    """The institution slug of a public page's URL, before the institution is bound."""
    return g.get("institution_slug")


def _add_slug_to_urls(bp: Blueprint) -> None:
    @bp.url_defaults
    def add_slug(endpoint, values):
        if "institution_slug" not in values and g.get("institution") is not None:
            # The slug of the URL (not the row's, which a commit expires and would read
            # again) when this is a request under the institution's address.
            values["institution_slug"] = g.get("institution_slug") or g.institution.slug
