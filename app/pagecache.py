"""Public pages served from Redis.

A shared link is opened by hundreds of phones in a minute, and each of them would render
the same page from the same rows. So a public page is rendered once per version of what it
shows and language, kept in Redis, and served from there without touching the database:

- **Versions.** A page's key holds a version number of its object (`changed()` bumps it
  after the commit of anything that changes what the page shows: a seat taken, a team
  filled, a price edited). A reader fetches the version before it reads the database, so
  a page rendered from rows older than a change is stored under the old version, which
  nobody asks for any more.
- **Time.** A page also lives at most PAGE_CACHE_SECONDS, and no longer than its object's
  next boundary (a campaign starting or ending, a team's deadline), which the view gives
  as `fresh_until()`: what a page says is never more optimistic than the truth for long.
- **The visitor's own parts** are not in the stored page: the CSRF token, the server's
  clock for countdowns and the referrer are markers (`visitor("csrf")` in a template) that
  every HTML response fills in for its own visitor, cached or not. A visitor with things
  of their own on the page (a flashed message, their team places) gets it rendered.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime

import redis
from flask import Flask, current_app, g, make_response, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from app.db import after_commit, utcnow
from app.extensions import db, redis_connection
from app.tenancy import current_institution

log = logging.getLogger(__name__)

# \x1f never reaches a page from what people type (app.text removes control characters).
_MARKER = "\x1fcohort:{}\x1f"
_MARKERS = re.compile("\x1fcohort:(\\w+)\x1f")
_FILLERS: dict[str, Callable[[], str]] = {
    "csrf": lambda: generate_csrf(),
    "now": lambda: utcnow().isoformat(),
    "referrer": lambda: str(escape((request.referrer or "")[:500])),
}


def visitor(name: str) -> Markup:
    """A part of the page that is the visitor's own ("csrf", "now", "referrer")."""
    if name not in _FILLERS:
        raise KeyError(name)
    return Markup(_MARKER.format(name))  # noqa: S704 - a fixed marker, filled in escaped


def init_app(app: Flask) -> None:
    app.jinja_env.globals["visitor"] = visitor

    @app.after_request
    def fill_in_the_visitor(response):
        if response.mimetype == "text/html" and not response.direct_passthrough:
            body = response.get_data(as_text=True)
            if "\x1fcohort:" in body:
                response.set_data(_MARKERS.sub(lambda m: _FILLERS[m.group(1)](), body))
        return response


def _key(institution_id: int, kind: str, ref: str) -> str:
    return f"page:{institution_id}:{kind}:{ref}"


def changed(institution_id: int, kind: str, ref: str) -> None:
    """The pages of this object are out of date once the current transaction commits."""
    key = _key(institution_id, kind, ref) + ":v"
    session = db.session()
    stale = session.info.setdefault("cohort_stale_pages", set())
    if key in stale:
        return
    stale.add(key)

    def bump() -> None:
        stale.discard(key)
        try:
            redis_connection.client.incr(key)
        except redis.RedisError as error:  # the page expires by itself soon
            log.warning("page %s not refreshed: %s", key, error)

    after_commit(session, bump)


def fresh_until(moment: datetime | None) -> None:
    """The page being rendered must not be served after `moment` (its object's next
    boundary: a start, an end, a deadline)."""
    if moment is None:
        return
    current = g.get("page_fresh_until")
    g.page_fresh_until = moment if current is None else min(current, moment)


def serve(
    kind: str,
    ref: str,
    render: Callable,
    *,
    shows: tuple[tuple[str, str], ...] = (),
    personal: bool = False,
):
    """The public page of an object (`kind`, `ref`: "group_buy", its code): from Redis
    when a current copy is there, else rendered by `render()` (which returns what a view
    returns) and kept. `shows`: other objects the page shows (a team's page shows its
    campaign), whose changes also make it out of date. `personal`: the page has parts of
    this visitor's own (render it)."""
    seconds = current_app.config["PAGE_CACHE_SECONDS"]
    if personal or not seconds or session.get("_flashes"):
        return render()
    from app.web import current_language  # the page's language is part of its key

    institution = current_institution()
    key = _key(institution.id, kind, ref)
    version_keys = [key + ":v"] + [_key(institution.id, *other) + ":v" for other in shows]
    client = redis_connection.client
    try:
        versions = ".".join((v or b"0").decode() for v in client.mget(version_keys))
        stamp = institution.updated_at.timestamp() if institution.updated_at else 0
        also = "".join(f":{other_kind}={other_ref}" for other_kind, other_ref in shows)
        page_key = f"{key}{also}:{versions}:{stamp:.0f}:{current_language()}"
        cached = client.get(page_key)
    except redis.RedisError:
        return render()
    if cached is not None:
        # The copy says until when it holds (by our clock, not only Redis's expiry).
        until, _, body = cached.partition(b"\n")
        if float(until) > utcnow().timestamp():
            return current_app.response_class(body, mimetype="text/html")
    response = make_response(render())
    if response.status_code == 200 and response.mimetype == "text/html":
        now = utcnow()
        until = g.get("page_fresh_until")
        if until is not None:
            seconds = min(seconds, int((until - now).total_seconds()))
        if seconds > 0:
            until = f"{now.timestamp() + seconds:.3f}".encode()
            with suppress(redis.RedisError):  # served all the same
                client.set(page_key, until + b"\n" + response.get_data(), ex=seconds)
    return response
