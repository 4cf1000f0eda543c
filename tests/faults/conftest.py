"""A whole Cohort for the fault tests: its own database (the application's role held to
row-level security), its own redis-server, gunicorn, a worker and the scheduler, with
localstripe behind a proxy that can make Stripe unreachable or slow (app/devtools)."""

from __future__ import annotations

import os
import shutil

import pytest

from app.devtools.proxy import FaultyProxy
from app.devtools.stack import Stack

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(pytest.mark.stack)


@pytest.fixture
def stripe_proxy(localstripe):
    host, port = localstripe.url.removeprefix("http://").split(":")
    proxy = FaultyProxy(host, int(port)).start()
    yield proxy
    proxy.stop()


@pytest.fixture
def stack(stripe_proxy, mail_server, tmp_path):
    """The stack, with the demo institution seeded; nothing started but Redis (each test
    starts what it needs, so it can break it)."""
    if not TEST_DATABASE_URL or not shutil.which("redis-server"):
        pytest.skip("the fault tests need PostgreSQL (TEST_DATABASE_URL) and redis-server")
    fast = {
        # Seconds instead of minutes, so that a test sees recovery happen.
        "SWEEP_INTERVAL_SECONDS": "2",
        "COUNTER_INTERVAL_SECONDS": "2",
        "RECONCILE_INTERVAL_SECONDS": "3",
        "JOB_MONITORING_SECONDS": "1",
        "JOB_LOST_AFTER_SECONDS": "6",
        "WORKER_TTL_SECONDS": "10",
        "SCHEDULER_LOCK_SECONDS": "5",
        "STRIPE_TIMEOUT": "2",
        "STRIPE_NETWORK_RETRIES": "0",
        "OUTBOX_RETRY_BASE_SECONDS": "1",
        # Every request of a test comes from one address, to one form.
        "FORM_LIMIT_PER_IP": "10000 per minute",
        "FORM_LIMIT_PER_FORM": "10000 per minute",
        "JOIN_LIMIT_PER_IP": "10000 per minute",
        "REGISTER_LIMIT_PER_IP": "10000 per minute",
    }
    with Stack(
        TEST_DATABASE_URL,
        stripe_url=stripe_proxy.url,
        smtp_port=mail_server.port,
        workdir=tmp_path / "stack",
        env=fast,
    ) as running:
        running.cohort("seed-demo")
        yield running
