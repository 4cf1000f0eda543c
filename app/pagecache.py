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
- **Where it is served.** A visitor without a session cookie (a parent opening a shared
  link) is answered by `ServeKeptPages`, in front of the Flask app as /healthz is: nothing
  of theirs can be on the page and their language is the link's or the institution's, so
  the kept page, its security headers (kept with it) and the markers are all it takes. A
  visitor with a session is answered the same way from inside Flask (`_serve_kept`), once
  their session says the page holds nothing of their own.
- **In the process's memory.** Even one Redis round trip per view costs a worker more than
  a hello-world page does, so each web process also holds the pages it served
  (`PagesInMemory`) for at most PAGE_MEMORY_SECONDS. `changed()` publishes the bumped
  version on a Redis channel that a thread of every web process listens to: the copies
  showing that object are dropped within milliseconds, in the process that made the
  change before its request returns. A process whose listener is not connected keeps no
  copies; the seconds bound the rest (a notice lost with a dropped connection). Views
  served from memory are counted in memory and added to Redis's counts four times a
  second (COUNTS_ADDED_EVERY).
- **Unchanged answers.** A view marked `@unchanged_since(kind, ref)` answers what changed
  in an object (a group's feed) to a page that asks every few seconds. A GET whose
  If-None-Match is the object's current version gets a 304 from `ServeKeptPages`, with the
  version known in this process's memory (kept like the pages' copies), so hundreds of
  open pages that ask cost what a hello-world page does.
- **Refusals known in advance.** A POST view marked `@refuses_in_front(kind, ref)` (a
  flash sale's buy button) may learn a refusal that changes nothing and holds until its
  object changes: "sold out", "ended". It tells this process with `remember_refusal()`;
  until the object's version is bumped (the notice drops it, as it drops page copies) and
  for at most PAGE_MEMORY_SECONDS, `ServeKeptPages` answers that view's POSTs with the
  same redirect, in front of Flask, and counts each in Redis within COUNTS_ADDED_EVERY. So
  the crowd tapping a sold-out sale costs what a hello-world page does, and a seat given
  back is on offer again as soon as its notice arrives.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import re
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import TypeVar
from urllib.parse import quote

import redis
from flask import Flask, current_app, g, has_request_context, make_response, request, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from sqlalchemy import event
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect
from werkzeug.wrappers import Request

from app import counters
from app.db import after_commit, utcnow
from app.extensions import db, redis_connection
from app.tenancy import (
    current_institution,
    public_institution_id,
    requested_slug,
    set_copies_in_memory,
)

T = TypeVar("T")
log = logging.getLogger(__name__)

# \x1f never reaches a page from what people type (app.text removes control characters).
_MARKER = "\x1fcohort:{}\x1f"
_MARKERS = re.compile(b"\x1fcohort:(\\w+)\x1f")  # found in the encoded body
_FILLERS: dict[str, Callable[[Request, bool], str]] = {  # (request, page kept) -> text
    # A kept page carries no token: one would tie every visitor to a session, and most
    # never send the form. The form asks for its own (GET /csrf, static/js/forms.js).
    "csrf": lambda _request, kept: "" if kept else generate_csrf(),
    "now": lambda _request, _kept: utcnow().isoformat(),
    "referrer": lambda request, _kept: str(escape((request.referrer or "")[:500])),
    "here": lambda request, _kept: quote(request.full_path.rstrip("?"), safe="/"),  # ?next=
}
# Headers of a rendered page that are its visitor's, not the page's: not kept with it.
_NOT_KEPT = frozenset({"content-length", "set-cookie"})

INSTITUTION = "institution"  # the kind whose version every page of an institution follows
CHANGES = "page:changes"  # the channel changed() publishes bumped version keys on
# Seconds between adding the views and refusals a web process counted in memory to Redis's
# counts: a flash sale's writer watches the refusals arrive (app.campaigns.services).
COUNTS_ADDED_EVERY = 0.25

# The kept page if every version it was rendered at is still current and it is not past
# its time (ARGV[1], our clock): [until, institution id, body, headers, versions], else
# nothing. With more ARGV (a counters.Count), the view is counted on a hit. One round trip.
_FETCH_SCRIPT = (
    counters.BUMP_LUA
    + """
local entry = redis.call('HMGET', KEYS[1], 'versions', 'until', 'institution', 'body', 'headers')
if not entry[4] then return false end
for key, version in string.gmatch(entry[1], '(%S+) (%S+)') do
  if (redis.call('GET', key) or '0') ~= version then return false end
end
if tonumber(entry[2]) <= tonumber(ARGV[1]) then return false end
if #ARGV > 1 then bump(entry[3], 2) end
return {entry[2], entry[3], entry[4], entry[5], entry[1]}
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
    count: Callable[..., counters.Count] | None  # (request, **view args): what a view adds to
    personal: Callable[[], bool] | None  # this visitor has parts of their own on the page


def cached(
    shows: Callable[..., list[tuple[str, str]]],
    *,
    count: Callable[..., counters.Count] | None = None,
    personal: Callable[[], bool] | None = None,
):
    """Keep what a public view answers to GET in Redis (see the module's notes). `count`
    is given the request (a werkzeug Request, its query and headers) and the view's
    arguments: it runs in front of Flask too."""
    page = CachedPage(shows, count, personal)

    def decorator(view):
        @wraps(view)
        def wrapper(**kwargs):
            if request.method != "GET":
                return view(**kwargs)
            institution = current_institution()
            if page.count is not None:
                counters.bump(institution.id, page.count(request, **kwargs))
            if not _may_keep(page):
                return view(**kwargs)
            g.page_kept = True
            return _render_and_keep(page, institution.id, kwargs, lambda: view(**kwargs))

        wrapper.cached_page = page  # found by _serve_kept through the route's view
        return wrapper

    return decorator


def unchanged_since(kind: str, ref: Callable[..., str]):
    """Mark a GET view whose answer changes only with the version of one object (`kind`,
    `ref(**view args)`): a request whose If-None-Match is `etag(version)` is answered 304
    in front of Flask (see the module's notes). The view answers the others, with
    `current_version` and `etag` itself."""

    def decorator(view):
        view.unchanged_since = (kind, ref)
        return view

    return decorator


def refuses_in_front(kind: str, ref: Callable[..., str]):
    """Mark a POST view whose refusals this process may remember (`remember_refusal`) and
    give in front of Flask while the object (`kind`, `ref(**view args)`) is unchanged (see
    the module's notes)."""

    def decorator(view):
        view.refuses_in_front = (kind, ref)
        return view

    return decorator


def generation() -> int:
    """Changes this process has noticed so far: read it before asking what a refusal
    depends on, and give it to `remember_refusal`."""
    return in_memory.generation


def remember_refusal(
    institution_id: int, kind: str, ref: str, location: str, counted_in: str, since: int
) -> None:
    """The view's POSTs are refused with a redirect to `location` until the object changes
    (a change noticed after `since`, from `generation()`, keeps it from being remembered);
    each refusal given in front of Flask adds one to the Redis key `counted_in`."""
    key = _version_key(institution_id, kind, ref)
    in_memory.started(current_app).remember_refusal(
        key, Refusal(location, counted_in, utcnow().timestamp()), since
    )


def etag(version: int | None) -> str:
    return f'"{version or 0}"'


def current_version(institution_id: int, kind: str, ref: str) -> int | None:
    """The object's version (0 before any change): from this process's memory while it
    listens for changes, else from Redis; None if Redis does not answer."""
    key = _version_key(institution_id, kind, ref)
    now = utcnow().timestamp()
    known = in_memory.started(current_app).version(key, now)
    if known is not None:
        return known
    generation = in_memory.generation
    try:
        version = int(redis_connection.client.get(key) or 0)
    except redis.RedisError:
        return None
    in_memory.remember_version(key, version, now, generation)
    return version


_TERMS_KEPT = 1000  # objects a web process keeps the terms of (few are busy at once)
_terms: dict[tuple[int, str, str], tuple[int, float, object]] = {}  # (version, read, terms)


def kept_terms(institution_id: int, kind: str, ref: str, read: Callable[[], T | None]) -> T | None:
    """What `read()` gives of an object (plain values, never a row: the terms a POST is
    decided on), from this process's memory while the object's version (bumped by every
    change of it, the notice reaching every web process within milliseconds) is the one
    it was read under, for at most PAGE_MEMORY_SECONDS (a bump that never reached Redis
    is outlived by that much only); else read again and kept. A crowd's POSTs then ask
    nothing of the database for it. Nothing is kept for None (no such object), or while
    Redis does not answer, or while this transaction has changed the object (`changed`:
    what it reads is not committed yet), or outside a request (a job's process, forked for
    it, does not listen for changes)."""
    if not has_request_context():
        return read()
    if _version_key(institution_id, kind, ref) in db.session().info.get(_STALE, ()):
        return read()
    version = current_version(institution_id, kind, ref)
    key = (institution_id, kind, ref)
    now = utcnow().timestamp()
    kept = _terms.get(key)
    seconds = current_app.config["PAGE_MEMORY_SECONDS"]
    if version is not None and kept is not None and kept[0] == version and now < kept[1] + seconds:
        return kept[2]
    terms = read()
    if terms is not None and version is not None and seconds:  # (a change since bumps it)
        if len(_terms) >= _TERMS_KEPT:
            _terms.clear()
        _terms[key] = (version, now, terms)
    return terms


def init_app(app: Flask) -> None:
    """Registered before the security headers (app.web.init_security): its after_request
    runs after theirs, so a kept page is kept with them."""
    app.jinja_env.globals["visitor"] = visitor
    app.wsgi_app = ServeKeptPages(app)
    set_copies_in_memory(in_memory)  # the institutions of public pages, kept as pages are

    @app.before_request
    def serve_kept_page():
        return _serve_kept()

    @app.after_request
    def keep_and_fill_in_the_visitor(response):
        keeping = g.pop("page_to_keep", None)
        if keeping is not None:
            _keep(response, *keeping)
        if response.mimetype == "text/html" and not response.direct_passthrough:
            body = response.get_data()
            if b"\x1fcohort:" in body:
                response.set_data(_filled(body, request, bool(g.get("page_kept"))))
        return response


def _filled(body: bytes, request: Request, kept: bool) -> bytes:
    """The page's markers filled in for this visitor."""
    return _MARKERS.sub(
        lambda marker: _FILLERS[marker.group(1).decode()](request, kept).encode(), body
    )


def _version_key(institution_id: int, kind: str, ref: str) -> str:
    return f"page:{institution_id}:{kind}:{ref}:v"


_STALE = "cohort_stale_pages"  # session.info: the pages this transaction has made stale


def changed(institution_id: int, kind: str, ref: str = "") -> None:
    """The pages that show this object (or, for INSTITUTION, every public page of the
    institution) are out of date once the current transaction commits."""
    key = _version_key(institution_id, kind, ref)
    session_ = db.session()
    stale = session_.info.setdefault(_STALE, set())
    if key in stale:
        return
    stale.add(key)

    def bump() -> None:
        stale.discard(key)
        _bump(key)

    after_commit(session_, bump)


@event.listens_for(Session, "after_soft_rollback")
def _nothing_made_stale(session: Session, previous_transaction) -> None:
    """A transaction rolled back made no page stale (its bumps were dropped with it): the
    next transaction of the session marks them again."""
    if previous_transaction.parent is None:
        session.info.pop(_STALE, None)


def changed_now(institution_id: int, kind: str, ref: str = "") -> None:
    """As `changed`, for a change made outside the database (a seat given back in Redis
    when a transaction rolled back): the pages are out of date now."""
    _bump(_version_key(institution_id, kind, ref))


def _bump(key: str) -> None:
    in_memory.drop(key)  # here at once; in the other processes when the notice comes
    try:
        redis_connection.client.pipeline(transaction=False).incr(key).publish(
            CHANGES, key
        ).execute()
    except redis.RedisError as error:  # the page expires by itself soon
        log.warning("page %s not refreshed: %s", key, error)


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


def _page_key(slug: str | None, endpoint: str, view_args: dict, chosen: str | None) -> str:
    """The kept page of this URL in the visitor's chosen language ("-": none, the
    institution's)."""
    language = chosen if chosen in current_app.config["LANGUAGES"] else "-"
    args = ",".join(f"{name}={value}" for name, value in sorted(view_args.items()))
    return f"page:{slug}:{endpoint}:{args}:{language}"


def _this_page_key() -> str:
    chosen = request.args.get("lang") or session.get("lang")
    return _page_key(requested_slug(), request.endpoint, request.view_args, chosen)


@dataclass(frozen=True)
class KeptPage:
    body: bytes  # markers not filled in
    headers: list[tuple[str, str]]
    institution_id: int
    versions: frozenset[str]  # the version keys it follows
    until: float  # our clock's timestamp
    fetched: float  # when this process had it from Redis


@dataclass(frozen=True)
class Refusal:
    location: str  # where the refused POST is redirected
    counted_in: str  # the Redis key each refusal adds one to
    learnt: float  # our clock's timestamp


def _lookup(page: CachedPage, key: str, request: Request, view_args: dict) -> KeptPage | None:
    """The kept page if it is current, from this process's memory or from Redis, with the
    view counted; else None (the view renders it, and counts it). Raises redis.RedisError."""
    app = current_app._get_current_object()
    now = utcnow().timestamp()  # our clock, not only Redis's expiry
    memory = in_memory.started(app)
    kept = memory.get(key, now)
    if kept is not None:
        if page.count is not None:
            memory.count(kept.institution_id, page.count(request, **view_args))
        return kept
    generation = memory.generation  # a change noticed from here on: not kept (put)
    fetch = redis_connection.script(_FETCH_SCRIPT)
    args = [f"{now:.3f}"]
    if page.count is not None:
        args += page.count(request, **view_args).as_script_args()
    found = fetch(keys=[key], args=args)
    if not found or len(found) < 5:  # not kept, not current, or kept before headers were
        return None
    until, institution_id, body, headers, versions = found
    kept = KeptPage(
        body=body,
        headers=[tuple(header) for header in json.loads(headers)],
        institution_id=int(institution_id),
        versions=frozenset(versions.decode().split()[::2]),
        until=float(until),
        fetched=now,
    )
    memory.put(key, kept, generation)
    return kept


def _serve_kept():
    """Before anything else of a request: the kept page of a cached view, if current."""
    if request.method != "GET" or request.endpoint is None:
        return None
    page = getattr(current_app.view_functions.get(request.endpoint), "cached_page", None)
    if page is None or not _may_keep(page):
        return None
    try:
        kept = _lookup(page, _this_page_key(), request, request.view_args)
    except redis.RedisError:
        return None  # rendered as usual
    if kept is None:
        return None  # rendered, and counted there
    g.page_kept = True
    return current_app.response_class(kept.body, mimetype="text/html")


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
        }
        g.page_to_keep = (_this_page_key(), entry, seconds)  # with its headers: _keep
    return response


def _keep(response, key: str, entry: dict, seconds: int) -> None:
    """Keep the rendered page (markers not yet filled in) with the headers every visitor
    gets (the security headers; not a cookie)."""
    headers = [(k, v) for k, v in response.headers.items() if k.lower() not in _NOT_KEPT]
    entry = {**entry, "body": response.get_data(), "headers": json.dumps(headers)}
    with suppress(redis.RedisError):  # served all the same
        client = redis_connection.client
        client.pipeline(transaction=True).hset(key, mapping=entry).expire(key, seconds).execute()


class ServeKeptPages:
    """WSGI middleware: a kept page for a visitor without a session (see the module's
    notes), answered before Flask makes a request context. Anything else, or anything in
    doubt (a redirect of the route, HTTPS to force, a NUL in the URL, Redis not answering),
    goes on to the Flask app, which answers it as it would any request."""

    def __init__(self, app: Flask):
        self.app = app
        self.wsgi_app = app.wsgi_app

    def __call__(self, environ, start_response):
        method = environ["REQUEST_METHOD"]
        answer = None
        if method == "GET":
            answer = self._kept(environ)
        elif method == "POST":
            answer = self._refused(environ)
        if answer is not None:
            status, headers, body = answer
            start_response(status, headers)
            return [body]
        return self.wsgi_app(environ, start_response)

    def _route(self, environ, method: str):
        """(request, endpoint, view, institution slug, view args) of a request this
        middleware may answer, or None (Flask answers it)."""
        app = self.app
        request = Request(environ)
        if app.config["FORCE_HTTPS"] and request.scheme != "https":
            return None
        if "\x00" in request.path or "%00" in environ.get("QUERY_STRING", ""):
            return None  # refused inside (app.web.refuse_nul)
        try:
            endpoint, view_args = app.url_map.bind_to_environ(environ).match(method=method)
        except (HTTPException, RequestRedirect):
            return None
        view = app.view_functions.get(endpoint)
        slug = view_args.pop("institution_slug", None)
        return request, endpoint, view, slug, view_args

    def _refused(self, environ):
        """A refusal this process already knows (remember_refusal), or None."""
        if not in_memory.has_refusals:  # most POSTs, and the first after a fork
            return None
        route = self._route(environ, "POST")
        if route is None:
            return None
        _request, _endpoint, view, slug, view_args = route
        refuses = getattr(view, "refuses_in_front", None)
        if refuses is None or slug is None:
            return None
        kind, ref = refuses
        with self.app.app_context():
            memory = in_memory.started(self.app)
            institution_id = memory.institution_id(slug)
            if institution_id is None:
                return None
            key = _version_key(institution_id, kind, ref(**view_args))
            refusal = memory.refusal(key, utcnow().timestamp())
        if refusal is None:
            return None
        headers = [
            ("Location", refusal.location),
            ("Content-Length", "0"),
            ("Cache-Control", "no-store"),
        ]
        return "302 FOUND", headers, b""

    def _kept(self, environ):
        app = self.app
        route = self._route(environ, "GET")
        if route is None:
            return None
        request, endpoint, view, slug, view_args = route
        if hasattr(view, "unchanged_since"):
            return self._unchanged(request, view.unchanged_since, slug, view_args)
        page = getattr(view, "cached_page", None)
        if page is None or app.config["SESSION_COOKIE_NAME"] in request.cookies:
            return None
        if not app.config["PAGE_CACHE_SECONDS"]:
            return None
        with app.app_context():
            try:
                key = _page_key(slug, endpoint, view_args, request.args.get("lang"))
                kept = _lookup(page, key, request, view_args)
            except redis.RedisError:
                return None
            if kept is None:
                return None
            body = _filled(kept.body, request, kept=True)
        headers = [*kept.headers, ("Content-Length", str(len(body))), ("Vary", "Cookie")]
        return "200 OK", headers, body

    def _unchanged(self, request: Request, since, slug: str | None, view_args: dict):
        """304 for a request that has the current version; None (ask Flask) otherwise."""
        asked = request.headers.get("If-None-Match")
        if not asked or slug is None:
            return None
        kind, ref = since
        with self.app.app_context():
            institution_id = in_memory.started(self.app).institution_id(slug)
            if institution_id is None:
                return None
            version = current_version(institution_id, kind, ref(**view_args))
        if version is None or etag(version) != asked:
            return None
        return "304 Not Modified", [("ETag", asked), ("Cache-Control", "no-store")], b""


class PagesInMemory:
    """This process's copies of kept pages (see the module's notes), and the views it
    served from them, not yet added to Redis's counts."""

    MOST = 500  # copies at once: a few MiB at most

    def __init__(self) -> None:
        self._copies: dict[str, KeptPage] = {}
        self._versions: dict[str, tuple[int, float]] = {}  # version key: (version, fetched)
        self._institutions: dict[str, tuple[int, float]] = {}  # slug: (id, fetched)
        # slug: (the columns of app.tenancy's copy, its version key, fetched)
        self._institution_copies: dict[str, tuple[dict, str, float]] = {}
        self._refusals: dict[str, Refusal] = {}  # version key: the refusal it stands for
        self._refused: Counter = Counter()  # Redis key: refusals given, not yet added there
        self.generation = 0  # changes noticed: a copy fetched before one is not kept
        self._counts: dict[tuple[int, str], Counter] = defaultdict(Counter)
        self._lock = threading.Lock()
        self._adding = threading.Lock()
        self._seconds = 0
        self._listening = False  # copies are kept and served only while it is
        self._pid: int | None = None
        self._stopping = threading.Event()

    def started(self, app: Flask) -> PagesInMemory:
        """Listening for changes in this process (after a fork, anew)."""
        if self._pid != os.getpid():
            with self._lock:
                if self._pid != os.getpid():
                    self._pid, self._listening = os.getpid(), False
                    self._forget_everything()  # the parent's, which it listened for
                    self._counts.clear()  # the parent's views: it adds them itself
                    self._refused.clear()
                    self._seconds = app.config["PAGE_MEMORY_SECONDS"]
                    if self._seconds:
                        threading.Thread(
                            target=self._listen, name="page-changes", daemon=True
                        ).start()
                        atexit.register(self._stop)
        return self

    @property
    def listening(self) -> bool:
        return self._listening

    def get(self, key: str, now: float) -> KeptPage | None:
        kept = self._copies.get(key) if self._listening else None
        if kept is None or now >= min(kept.until, kept.fetched + self._seconds):
            return None
        return kept

    def put(self, key: str, kept: KeptPage, generation: int) -> None:
        with self._lock:
            if not self._listening or generation != self.generation:
                return  # a change was noticed while it was fetched: it may be older
            if len(self._copies) >= self.MOST:
                self._copies.pop(next(iter(self._copies)))  # the oldest
            self._copies[key] = kept

    def version(self, key: str, now: float) -> int | None:
        known = self._versions.get(key) if self._listening else None
        if known is None or now >= known[1] + self._seconds:
            return None
        return known[0]

    def remember_version(self, key: str, version: int, now: float, generation: int) -> None:
        self._remember(self._versions, key, (version, now), generation, self.MOST * 10)

    def _remember(self, store: dict, key: str, value, generation: int, most: int) -> None:
        """Put `value` in `store` (emptied first when it holds `most`), unless a change was
        noticed since `generation`: what it was read from may be older than the change."""
        with self._lock:
            if not self._listening or generation != self.generation:
                return
            if len(store) >= most:
                store.clear()
            store[key] = value

    @property
    def has_refusals(self) -> bool:
        return bool(self._refusals)

    def refusal(self, key: str, now: float) -> Refusal | None:
        """The refusal remembered for this version key, if still good; counted."""
        refusal = self._refusals.get(key) if self._listening else None
        if refusal is None or now >= refusal.learnt + self._seconds:
            return None
        with self._lock:
            self._refused[refusal.counted_in] += 1
        return refusal

    def remember_refusal(self, key: str, refusal: Refusal, generation: int) -> None:
        self._remember(self._refusals, key, refusal, generation, self.MOST)

    def institution_id(self, slug: str) -> int | None:
        """The id of the institution at this public address (from tenancy's copy in Redis,
        kept here for PAGE_MEMORY_SECONDS), or None if it is not known there."""
        now = time.monotonic()
        known = self._institutions.get(slug)
        if known is not None and now < known[1] + self._seconds:
            return known[0]
        try:
            institution_id = public_institution_id(slug)
        except redis.RedisError:
            return None
        if institution_id is not None and self._seconds:
            if len(self._institutions) >= self.MOST:
                self._institutions.clear()
            self._institutions[slug] = (institution_id, now)
        return institution_id

    def institution_copy(self, slug: str) -> dict | None:
        """The columns of the institution at this public address as a request of this
        process read them (`keep_institution_copy`), while no change to it was noticed and
        for at most PAGE_MEMORY_SECONDS (app.tenancy.institution_for_public_pages)."""
        kept = self._institution_copies.get(slug) if self.started(current_app).listening else None
        if kept is None or time.monotonic() >= kept[2] + self._seconds:
            return None
        return kept[0]

    def keep_institution_copy(self, slug: str, columns: dict, generation: int) -> None:
        version_key = _version_key(columns["id"], INSTITUTION, "")
        kept = (columns, version_key, time.monotonic())
        self._remember(self._institution_copies, slug, kept, generation, self.MOST)

    def drop(self, version_key: str) -> None:
        """Forget the copies that follow this version, and the version (it was bumped)."""
        with self._lock:
            self.generation += 1
            self._versions.pop(version_key, None)
            self._refusals.pop(version_key, None)
            for key in [k for k, kept in self._copies.items() if version_key in kept.versions]:
                del self._copies[key]
            for slug, kept in list(self._institution_copies.items()):
                if kept[1] == version_key:
                    del self._institution_copies[slug]

    def clear(self) -> None:
        """Forget everything kept (the listener lost its connection: notices may have
        been missed)."""
        with self._lock:
            self._forget_everything()

    def _forget_everything(self) -> None:
        """(With the lock held.) A change is noticed, so nothing being read is kept."""
        self.generation += 1
        self._copies.clear()
        self._versions.clear()
        self._institutions.clear()
        self._institution_copies.clear()
        self._refusals.clear()
        _terms.clear()

    def count(self, institution_id: int, count: counters.Count) -> None:
        with self._lock:
            fields = self._counts[(institution_id, count.kind)]
            for name in count.names:
                fields[f"{count.object_id}:{name}"] += 1

    def add_counts(self) -> None:
        """Add the views and refusals counted here to Redis's counts (every
        COUNTS_ADDED_EVERY, and at exit)."""
        with self._adding:  # a second caller returns once the first one's are in Redis
            with self._lock:
                counts, self._counts = self._counts, defaultdict(Counter)
                refused, self._refused = self._refused, Counter()
            try:
                if counts:
                    counters.add(counts)
                    counts = {}
                if refused:
                    pipe = redis_connection.client.pipeline(transaction=False)
                    for key, n in refused.items():
                        pipe.incrby(key, n)
                    pipe.execute()
            except redis.RedisError as error:
                log.warning("page views and refusals kept for later: %s", error)
                with self._lock:
                    for owner, fields in counts.items():
                        self._counts[owner].update(fields)
                    self._refused.update(refused)

    def _stop(self) -> None:
        """At exit: the last views into Redis, and the listener quiet."""
        self._stopping.set()
        self.add_counts()

    def _subscribed(self) -> None:
        """From here on, no notice is missed. What was kept or read before may have missed
        one (redis-py subscribes again by itself after a dropped connection, and the
        notices sent meanwhile are lost), so it is forgotten."""
        with self._lock:
            self._forget_everything()
            self._listening = True

    def _listen(self) -> None:
        """Drop the copies of what another process changed, as its notice comes."""
        while not self._stopping.is_set():
            changes = redis_connection.client.pubsub()
            try:
                changes.subscribe(CHANGES)
                while not self._stopping.is_set():
                    notice = changes.get_message(timeout=COUNTS_ADDED_EVERY)
                    if notice is None:
                        pass
                    elif notice["type"] == "subscribe":
                        self._subscribed()
                    elif notice["type"] == "message":
                        self.drop(notice["data"].decode())
                    self.add_counts()
            except Exception as error:  # noqa: BLE001 - whatever it was, start again
                self._listening = False
                self.clear()  # notices may have been missed
                if not self._stopping.is_set():
                    log.warning("not listening for page changes (%s); again in a second", error)
                with suppress(Exception):
                    changes.close()
                self._stopping.wait(1)


in_memory = PagesInMemory()
