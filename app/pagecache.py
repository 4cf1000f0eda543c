"""Public pages served from Redis.

A shared link is opened by hundreds of phones in a minute, and each of them would render
the same page from the same rows. So a public page is rendered once per version of what it
shows and language, kept in Redis, and served from there before the request binds its
institution or touches the database:

- **Which views.** A public view marked `@cached(shows, count=..., personal=...)`: `shows`
  names the objects its page shows (a team's page shows the team and its campaign).
- **Versions.** Each object has a version number in Redis, which `changed()` bumps after
  the commit of anything that changes what its pages show (a seat taken, a team filled, a
  price edited); the institution has one too (its name, logo, language). A kept page
  records the versions it was rendered at, read *before* the database was, and is served
  only while all of them are still current: one Redis round trip (a Lua script) checks
  them and fetches the page. A page rendered from rows older than a change is therefore
  never served after the change.
- **Time.** A page also lives at most PAGE_CACHE_SECONDS, and no longer than its object's
  next boundary (a campaign starting or ending, a team's deadline), which the view gives
  as `fresh_until()` while it renders: what a page says is never more optimistic than the
  truth for long, even with nothing changed in the database.
- **The visitor's own parts** are not in the kept page: the CSRF token, the server's
  clock for countdowns and the referrer are markers (`visitor("csrf")` in a template) that
  every HTML response fills in for its own visitor, kept or not. A visitor with things of
  their own on the page (`personal()`: their team places; a flashed message) gets it
  rendered, and views are counted (`count`) whichever way the page is served.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from urllib.parse import quote

import redis
from flask import Flask, current_app, g, make_response, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape

from app import counters
from app.db import after_commit, utcnow
from app.extensions import db, redis_connection
from app.tenancy import current_institution, requested_slug

log = logging.getLogger(__name__)

# \x1f never reaches a page from what people type (app.text removes control characters).
_MARKER = "\x1fcohort:{}\x1f"
_MARKERS = re.compile(b"\x1fcohort:(\\w+)\x1f")  # found in the encoded body
_FILLERS: dict[str, Callable[[], str]] = {
    # A kept page carries no token: one would tie every visitor to a session, and most
    # never send the form. The form asks for its own (GET /csrf, static/js/forms.js).
    "csrf": lambda: "" if g.get("page_kept") else generate_csrf(),
    "now": lambda: utcnow().isoformat(),
    "referrer": lambda: str(escape((request.referrer or "")[:500])),
    "here": lambda: quote(request.full_path.rstrip("?"), safe="/"),  # for ?next=
}

INSTITUTION = "institution"  # the kind whose version every page of an institution follows

# The kept page if every version it was rendered at is still current and it is not past
# its time (ARGV[1], our clock): [until, institution id, body], else nothing. With more
# ARGV (a counters.Count), the view is counted on a hit. One round trip.
_FETCH_SCRIPT = (
    counters.BUMP_LUA
    + """
local entry = redis.call('HMGET', KEYS[1], 'versions', 'until', 'institution', 'body')
if not entry[4] then return false end
for key, version in string.gmatch(entry[1], '(%S+) (%S+)') do
  if (redis.call('GET', key) or '0') ~= version then return false end
end
if tonumber(entry[2]) <= tonumber(ARGV[1]) then return false end
if #ARGV > 1 then bump(entry[3], 2) end
return {entry[2], entry[3], entry[4]}
"""
)


def visitor(name: str) -> Markup:
    """A part of the page that is the visitor's own: "csrf" (the form's token), "now"
    (the server's clock), "referrer", "here" (this URL with its query, URL-quoted)."""
    if name not in _FILLERS:
        raise KeyError(name)
    return Markup(_MARKER.format(name))  # noqa: S704 - a fixed marker, filled in escaped


@dataclass(frozen=True)
class CachedPage:
    shows: Callable[..., list[tuple[str, str]]]  # view args -> [(kind, ref)]
    count: Callable[..., counters.Count] | None  # (**view args): what a view adds to
    personal: Callable[[], bool] | None  # this visitor has parts of their own on the page


def cached(
    shows: Callable[..., list[tuple[str, str]]],
    *,
    count: Callable[..., counters.Count] | None = None,
    personal: Callable[[], bool] | None = None,
):
    """Keep what a public view answers to GET in Redis (see the module's notes)."""
    page = CachedPage(shows, count, personal)

    def decorator(view):
        @wraps(view)
        def wrapper(**kwargs):
            if request.method != "GET":
                return view(**kwargs)
            institution = current_institution()
            if page.count is not None:
                counters.bump(institution.id, page.count(**kwargs))
            if not _may_keep(page):
                return view(**kwargs)
            g.page_kept = True
            return _render_and_keep(page, institution.id, kwargs, lambda: view(**kwargs))

        wrapper.cached_page = page  # found by _serve_kept through the route's view
        return wrapper

    return decorator


def init_app(app: Flask) -> None:
    app.jinja_env.globals["visitor"] = visitor

    @app.before_request
    def serve_kept_page():
        return _serve_kept()

    @app.after_request
    def fill_in_the_visitor(response):
        if response.mimetype == "text/html" and not response.direct_passthrough:
            body = response.get_data()
            if b"\x1fcohort:" in body:
                response.set_data(_MARKERS.sub(_fill, body))
        return response


def _fill(marker: re.Match) -> bytes:
    return _FILLERS[marker.group(1).decode()]().encode()


def _version_key(institution_id: int, kind: str, ref: str) -> str:
    return f"page:{institution_id}:{kind}:{ref}:v"


def changed(institution_id: int, kind: str, ref: str = "") -> None:
    """The pages that show this object (or, for INSTITUTION, every public page of the
    institution) are out of date once the current transaction commits."""
    key = _version_key(institution_id, kind, ref)
    session_ = db.session()
    stale = session_.info.setdefault("cohort_stale_pages", set())
    if key in stale:
        return
    stale.add(key)

    def bump() -> None:
        stale.discard(key)
        try:
            redis_connection.client.incr(key)
        except redis.RedisError as error:  # the page expires by itself soon
            log.warning("page %s not refreshed: %s", key, error)

    after_commit(session_, bump)


def fresh_until(moment: datetime | None) -> None:
    """The page being rendered must not be served after `moment` (its object's next
    boundary: a start, an end, a deadline)."""
    if moment is None:
        return
    current = g.get("page_fresh_until")
    g.page_fresh_until = moment if current is None else min(current, moment)


def _may_keep(page: CachedPage) -> bool:
    if not current_app.config["PAGE_CACHE_SECONDS"] or session.get("_flashes"):
        return False
    return page.personal is None or not page.personal()


def _page_key() -> str:
    """The kept page of this URL in the visitor's language ("-": the institution's)."""
    chosen = request.args.get("lang") or session.get("lang")
    language = chosen if chosen in current_app.config["LANGUAGES"] else "-"
    args = ",".join(f"{name}={value}" for name, value in sorted(request.view_args.items()))
    return f"page:{requested_slug()}:{request.endpoint}:{args}:{language}"


def _serve_kept():
    """Before anything else of a request: the kept page of a cached view, if current."""
    if request.method != "GET" or request.endpoint is None:
        return None
    page = getattr(current_app.view_functions.get(request.endpoint), "cached_page", None)
    if page is None or not _may_keep(page):
        return None
    try:
        fetch = current_app.extensions.get("cohort_page_fetch")
        if fetch is None:
            fetch = redis_connection.client.register_script(_FETCH_SCRIPT)
            current_app.extensions["cohort_page_fetch"] = fetch
        args = [f"{utcnow().timestamp():.3f}"]  # our clock, not only Redis's expiry
        if page.count is not None:
            args += page.count(**request.view_args).as_script_args()
        found = fetch(keys=[_page_key()], args=args)
    except redis.RedisError:
        return None  # rendered as usual
    if not found:
        return None  # rendered, and counted there
    _until, _institution_id, body = found
    g.page_kept = True
    return current_app.response_class(body, mimetype="text/html")


def _render_and_keep(page: CachedPage, institution_id: int, view_args: dict, render: Callable):
    client = redis_connection.client
    keys = [_version_key(institution_id, INSTITUTION, "")]
    keys += [_version_key(institution_id, kind, ref) for kind, ref in page.shows(**view_args)]
    try:
        # Before the database is read: a change committed meanwhile bumps past these.
        versions = [(v or b"0").decode() for v in client.mget(keys)]
    except redis.RedisError:
        return render()
    response = make_response(render())
    if response.status_code != 200 or response.mimetype != "text/html":
        return response
    now = utcnow()
    seconds = current_app.config["PAGE_CACHE_SECONDS"]
    until = g.get("page_fresh_until")
    if until is not None:
        seconds = min(seconds, int((until - now).total_seconds()))
    if seconds > 0:
        entry = {
            "versions": " ".join(f"{k} {v}" for k, v in zip(keys, versions, strict=True)),
            "until": f"{now.timestamp() + seconds:.3f}",
            "institution": institution_id,
            "body": response.get_data(),
        }
        key = _page_key()
        with suppress(redis.RedisError):  # served all the same
            client.pipeline(transaction=True).hset(key, mapping=entry).expire(
                key, seconds
            ).execute()
    return response
