"""Test fixtures: one app per session, each test inside a transaction that is rolled back.

Set TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL to test against real servers (CI
does); without them the suite uses a temporary SQLite file and an embedded Redis. The test
database is wiped and rebuilt from the migrations at the start of the session, so never
point TEST_DATABASE_URL at a database you care about.
"""

from __future__ import annotations

import contextvars
import os
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import time_machine
from flask.testing import FlaskClient
from sqlalchemy import text

from app import create_app, migrate, pagecache
from app.config import sqlalchemy_url
from app.db import Base
from app.devtools.localstripe import LocalStripe
from app.devtools.mailsink import MailSink
from app.extensions import db, limiter, redis_connection

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
# Every test starts at this time of day in Shanghai (the clock then ticks on), so no test
# depends on when it runs; CI runs the suite at 03:00 and at 15:00.
TEST_CLOCK = os.environ.get("COHORT_TEST_CLOCK", "15:00")
TEST_ZONE = ZoneInfo("Asia/Shanghai")

pytest_plugins = ["tests.factories"]


class IsolatedClient(FlaskClient):
    """Each request runs in its own app context (as in production), not in the test's, so
    `g`, the signed-in user and the database session never leak between requests. The
    test's own session is expired afterwards so that it reads what the request wrote."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Tests read English unless they ask otherwise (the product defaults to zh_CN).
        self.environ_base["HTTP_ACCEPT_LANGUAGE"] = "en"

    def open(self, *args, **kwargs):
        response = contextvars.Context().run(super().open, *args, **kwargs)
        db.session.expire_all()
        return response


def next_occurrence(clock: str, zone: ZoneInfo, now: datetime) -> datetime:
    """The next instant after `now` at which the clock in `zone` reads `clock` ("HH:MM").

    Always ahead of the real clock (by at most a day), so that what a real browser or
    server keeps (cookie expiry, Redis TTLs) is never already past."""
    hour, minute = (int(part) for part in clock.split(":"))
    local_now = now.astimezone(zone)
    instant = datetime.combine(local_now.date(), time(hour, minute), tzinfo=zone)
    return instant if instant > local_now else instant + timedelta(days=1)


@pytest.fixture(scope="session")
def test_start() -> datetime:
    return next_occurrence(TEST_CLOCK, TEST_ZONE, datetime.now(TEST_ZONE))


@pytest.fixture(autouse=True)
def _clock(test_start, request):
    """Every test runs from the same instant of the day (see TEST_CLOCK); time ticks on
    from there, and tests may travel further. Tests of a whole stack (tests/faults) keep
    the real clock: their processes do."""
    if request.node.get_closest_marker("stack"):
        yield
        return
    with time_machine.travel(test_start, tick=True):
        yield


@pytest.fixture(scope="session")
def mail_server():
    sink = MailSink("127.0.0.1", 0).start()
    yield sink
    sink.stop()


@pytest.fixture(scope="session")
def localstripe():
    """A fake Stripe on loopback for the whole session; the official SDK talks to it."""
    server = LocalStripe().start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory) -> str:
    if TEST_DATABASE_URL:
        return sqlalchemy_url(TEST_DATABASE_URL)
    return f"sqlite:///{tmp_path_factory.mktemp('db') / 'cohort-test.db'}"


@pytest.fixture(scope="session")
def app(mail_server, localstripe, database_url, tmp_path_factory):
    app = create_app(
        {
            "COHORT_ENV": "testing",
            "TESTING": True,
            "SECRET_KEY": "test-secret-key-" + "x" * 32,
            "DATABASE_URL": database_url,
            "REDIS_URL": TEST_REDIS_URL or "",
            "EMBEDDED_REDIS_PATH": str(tmp_path_factory.mktemp("redis") / "redis.db"),
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": mail_server.port,
            "PUBLIC_URL": "http://localhost",
            "WTF_CSRF_ENABLED": False,  # tests/test_security.py checks CSRF with it on
            "RATELIMIT_KEY_PREFIX": "cohort-test",
            # A flash sale's writer writes at once (tests/campaigns/test_flash_sales.py
            # checks its wait for the crowd with it on).
            "FLASH_WRITER_QUIET_SECONDS": 0,
            "STRIPE_API_BASE": localstripe.url,
            "STRIPE_SECRET_KEY": "sk_test_cohort",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_cohort",
        }
    )
    app.test_client_class = IsolatedClient
    with app.app_context():
        _rebuild_schema(database_url)
    return app


def _rebuild_schema(database_url: str) -> None:
    """Drop whatever a previous run left and build the schema from the migrations, so
    every run also proves that the migrations apply."""
    with db.engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            # Whatever schema an earlier version of the code left, whole.
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        else:
            Base.metadata.drop_all(connection)
            connection.execute(text("DROP TABLE IF EXISTS alembic_version"))
    db.engine.dispose()
    migrate.upgrade(database_url)


@pytest.fixture(autouse=True)
def _context(_clock, app, mail_server, request):
    """Every test: an app context, a transaction rolled back at the end, an empty Redis
    database (jobs, rate-limit counters) and an empty mailbox.

    Tests marked `committed` (races between real parallel requests) get no outer
    transaction: their requests commit for real, and tests/concurrency.py cleans up."""
    with app.app_context():
        pagecache.in_memory.add_counts()  # the last test's views, before they are wiped
        redis_connection.client.flushdb()
        pagecache.in_memory.clear()  # this process's copies of pages kept there
        limiter.reset()
        mail_server.clear()
        if request.node.get_closest_marker("committed") or request.node.get_closest_marker("stack"):
            try:
                yield
            finally:
                db.session.remove()
            return
        connection = db.engine.connect()
        transaction = connection.begin()
        db.session_factory.configure(bind=connection, join_transaction_mode="create_savepoint")
        try:
            yield
        finally:
            db.session.remove()
            transaction.rollback()
            connection.close()
            db.session_factory.configure(
                bind=db.engine, join_transaction_mode="conditional_savepoint"
            )


@pytest.fixture
def client(app) -> IsolatedClient:
    return app.test_client()
