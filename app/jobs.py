"""Background jobs on RQ: queues, the `@job` decorators, enqueueing by name after the
commit, periodic jobs and the worker/scheduler entry points.

Rules every job follows: it takes ids, never ORM objects; it is idempotent, because the
sweeper may enqueue it again; and it commits once, at its end, through the decorator.
A job that touches one institution's data is a `@job`: its first argument is the
institution's id, and it runs inside `bound(institution)` (app.tenancy), receiving the
institution itself as its first parameter. A job that looks across institutions (a
sweeper that finds lost work) is a `@platform_job` and binds nothing.

Services enqueue jobs by name ("campaigns.settle_team"), never by importing their own
domain's tasks module, which imports the services: there is no import circle between them.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from rq import Queue, Retry, SimpleWorker, Worker
from rq.cron import CronScheduler
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus

from app.db import after_commit
from app.extensions import db, redis_connection
from app.tenancy import bound, institution_by_id

log = logging.getLogger(__name__)

QUEUES = ("payments", "notifications", "default")  # highest priority first
JOBS: dict[str, Callable] = {}  # "campaigns.settle_team" -> the job function


def get_queue(name: str) -> Queue:
    return Queue(name, connection=redis_connection.client, is_async=current_app.config["RQ_ASYNC"])


def _declare(
    fn: Callable, run: Callable, queue: str, timeout: int, retries: int, for_institution: bool
) -> Callable:
    if queue not in QUEUES:
        raise ValueError(f"unknown queue {queue!r}")
    domain = fn.__module__.split(".")[-2]  # app.campaigns.tasks -> campaigns
    run.job_name = f"{domain}.{fn.__name__}"
    run.for_institution = for_institution
    run.queue_name = queue
    run.timeout = timeout
    run.retries = retries
    JOBS[run.job_name] = run
    return run


@contextmanager
def _unit_of_work() -> Iterator[None]:
    """A job's work is one transaction: what it did not commit is rolled back."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise


def job(queue: str = "default", timeout: int = 120, retries: int = 0):
    """Declare a job for one institution: called as fn(institution_id, *args), it runs as
    fn(institution, *args) inside `bound(institution)`, as one unit of work (commit on
    success, rollback on error). A job for an institution that no longer exists does
    nothing."""

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(institution_id: int, *args, **kwargs):
            with _unit_of_work():
                institution = institution_by_id(institution_id)
                if institution is None:
                    log.info("%s: institution %s no longer exists", run.job_name, institution_id)
                    return None
                with bound(institution):
                    result = fn(institution, *args, **kwargs)
                    db.session.commit()
                return result

        return _declare(fn, run, queue, timeout, retries, for_institution=True)

    return decorator


def platform_job(queue: str = "default", timeout: int = 120, retries: int = 0):
    """Declare a job that works across institutions (a sweeper): no institution is bound,
    so what it finds it hands on to `@job`s, one per institution."""

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with _unit_of_work():
                result = fn(*args, **kwargs)
                db.session.commit()
                return result

        return _declare(fn, run, queue, timeout, retries, for_institution=False)

    return decorator


def _job_named(name: str | Callable) -> Callable:
    if callable(name):
        return name
    try:
        return JOBS[name]
    except KeyError:
        raise LookupError(f"no job is named {name!r} (is its tasks module imported?)") from None


def _enqueue_options(fn: Callable, job_id: str | None) -> dict:
    options: dict = {"job_timeout": getattr(fn, "timeout", 120), "job_id": job_id}
    if getattr(fn, "retries", 0):
        options["retry"] = Retry(max=fn.retries, interval=[10, 60, 300])
    return options


def enqueue(
    name: str | Callable, *args, job_id: str | None = None, at: datetime | None = None
) -> Job:
    """Enqueue the job `name` with `args` now, or at `at` (the worker's scheduler moves it
    to the queue then)."""
    fn = _job_named(name)
    queue = get_queue(fn.queue_name)
    options = _enqueue_options(fn, job_id)
    if at is not None and queue.is_async:
        return queue.enqueue_at(at, fn, *args, **options)
    return queue.enqueue(fn, *args, **options)


def enqueue_after_commit(
    name: str | Callable, *args, job_id: str | None = None, at: datetime | None = None
) -> None:
    """Enqueue once the current transaction commits, so the job finds the rows it needs;
    nothing is enqueued if the transaction rolls back."""
    fn = _job_named(name)  # now: a misspelt name fails here, not silently after the commit

    def send() -> None:
        try:
            enqueue(fn, *args, job_id=job_id, at=at)
        except Exception:
            # Redis is down: the row is committed, so the sweeper will find the work.
            log.exception("could not enqueue %s%r; the sweeper will retry", fn.job_name, args)

    after_commit(db.session(), send)


def job_is_waiting(job_id: str) -> bool:
    """True if a job with this id is queued, scheduled, deferred or running in Redis."""
    try:
        status = Job.fetch(job_id, connection=redis_connection.client).get_status()
    except NoSuchJobError:
        return False
    return status in (
        JobStatus.QUEUED,
        JobStatus.SCHEDULED,
        JobStatus.DEFERRED,
        JobStatus.STARTED,
    )


# --- periodic jobs -------------------------------------------------------------------------


@dataclass(frozen=True)
class Periodic:
    fn: Callable
    interval_config: str  # the config key holding the interval in seconds


PERIODIC: list[Periodic] = []


def periodic(interval_config: str):
    """Register a job that the scheduler enqueues every `config[interval_config]` seconds."""

    def decorator(fn: Callable) -> Callable:
        PERIODIC.append(Periodic(fn, interval_config))
        return fn

    return decorator


# --- processes -----------------------------------------------------------------------------


def run_worker(app, queues: tuple[str, ...] = QUEUES, burst: bool = False) -> None:
    """Run an RQ worker with its scheduler (for jobs enqueued with `at=`) in an app context.

    RQ forks a work horse per job; the horse must not reuse the parent's database
    connections, so the engine's pool is discarded in the child right after the fork.
    """
    with app.app_context():
        engine = db.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        connection = redis_connection.client
        worker = Worker(
            [Queue(name, connection=connection) for name in queues], connection=connection
        )
        worker.work(with_scheduler=True, burst=burst)


def run_burst(queues: tuple[str, ...] = QUEUES) -> bool:
    """Move scheduled jobs that are due onto their queues, run every queued job in this
    process, and return (the tests' worker)."""
    connection = redis_connection.client
    worker = SimpleWorker(
        [Queue(name, connection=connection) for name in queues], connection=connection
    )
    return worker.work(burst=True, with_scheduler=True)


def run_scheduler(app) -> None:
    """Run the one periodic scheduler (RQ's CronScheduler) that enqueues the PERIODIC jobs."""
    with app.app_context():
        scheduler = CronScheduler(connection=redis_connection.client)
        for entry in PERIODIC:
            scheduler.register(
                entry.fn,
                queue_name=entry.fn.queue_name,
                interval=app.config[entry.interval_config],
                job_timeout=entry.fn.timeout,
            )
        scheduler.start()
