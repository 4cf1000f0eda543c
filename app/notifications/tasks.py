"""Delivering the outbox: the deliverer, a process of its own (`python worker.py
--deliver`), sends what is due as soon as it is queued or due.

It does not go through one RQ job per message: a reminder wave at 08:00 is thousands of
messages, and a job each would cost a fork and new connections per message. Instead the
deliverer claims due messages in batches straight from the database (FOR UPDATE SKIP
LOCKED, so any number of deliverers share the work without sending a message twice), sends
a batch over one SMTP connection and one HTTP session, records each message as it goes,
and sleeps until woken (app.notifications.services.wake_deliverer) or a second passes.
Because the outbox table is the queue, nothing is lost to a Redis flush or a killed
process: a claim runs out after its lease and another deliverer takes the message up.
"""

from __future__ import annotations

import logging
import signal
import time
from datetime import timedelta

import redis
from sqlalchemy import event

from app.extensions import db, redis_connection
from app.jobs import after_burst, recoverable
from app.notifications import services

log = logging.getLogger(__name__)


def run_deliverer(app, batch: int = 100, idle_seconds: float = 1.0) -> None:
    """Deliver the outbox until SIGTERM (the message in hand is finished first). Outages
    of Redis or the database are waited out, like the workers'. Uses the platform
    database role: it sends every institution's messages."""
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    signal.signal(signal.SIGINT, lambda *_: stopping.append(True))
    lease = timedelta(seconds=app.config["OUTBOX_LEASE_SECONDS"])
    with app.app_context():
        _commit_without_waiting_for_disk(db.platform_engine)
        backoff = 1.0
        unfinished = services.Unfinished()  # carried over an outage of the database
        while not stopping:
            try:
                with db.platform():
                    sent = services.deliver_due(batch, lease, unfinished)
                backoff = 1.0
                if not sent:
                    _wait_for_work(idle_seconds)
            except Exception as error:
                if not recoverable(error):
                    raise
                log.warning("deliverer: %s; trying again in %.0f s", error, backoff)
                db.session.remove()
                time.sleep(backoff)
                backoff = min(backoff * 2, 30.0)


def _commit_without_waiting_for_disk(engine) -> None:
    """The deliverer records each message in a commit of its own; PostgreSQL need not wait
    for those to reach the disk (a crash loses at most the last records: see
    services._deliver_claimed). Its connections only: the web's commits wait as ever."""
    if engine.dialect.name != "postgresql":
        return

    @event.listens_for(engine, "connect")
    def _set(dbapi_connection, _record) -> None:
        with dbapi_connection.cursor() as cursor:
            cursor.execute("SET synchronous_commit = off")
        dbapi_connection.commit()

    engine.dispose()  # connections made before this get the setting too


def _wait_for_work(seconds: float) -> None:
    try:
        redis_connection.client.blpop([services.WAKE], timeout=seconds)
    except redis.RedisError:
        time.sleep(seconds)


@after_burst
def deliver_everything_due() -> int:
    """The tests' deliverer: what is due now is sent, in this process."""
    with db.platform():
        return services.deliver_due()
