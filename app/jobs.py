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
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import redis
from flask import current_app
from rq import Queue, Retry, SimpleWorker, Worker
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from rq.registry import ScheduledJobRegistry, StartedJobRegistry
from rq.scheduler import RQScheduler
from rq.timeouts import BaseTimeoutException

from app.db import after_commit
from app.extensions import db, redis_connection
from app.tenancy import bound, institution_by_id

log = logging.getLogger(__name__)

# Highest priority first. Reconciliation (reading every unfinished payment back from
# Stripe) has a queue of its own, last, so that it never holds reminders back.
QUEUES = ("payments", "notifications", "default", "reconcile")
JOBS: dict[str, Callable] = {}  # "campaigns.settle_team" -> the job function
# The import paths of the jobs declared `in_process` (what RQ records as a job's function):
# the worker tells them by name, without importing what a job names before it forks.
IN_PROCESS: set[str] = set()
# A job that ran past its timeout (RQ raises it in the job): code that catches a job's
# failures to go on must let it through.
JobTimeout = BaseTimeoutException


def get_queue(name: str) -> Queue:
    return Queue(name, connection=redis_connection.client, is_async=current_app.config["RQ_ASYNC"])


def _declare(
    fn: Callable,
    run: Callable,
    queue: str,
    timeout: int,
    retries: int,
    for_institution: bool,
    in_process: bool = False,
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
    if in_process:
        IN_PROCESS.add(f"{fn.__module__}.{fn.__qualname__}")
    return run


@contextmanager
def _unit_of_work() -> Iterator[None]:
    """A job's work is one transaction: what it did not commit is rolled back."""
    try:
        yield
    except BaseException:
        db.session.rollback()
        raise


def job(queue: str = "default", timeout: int = 120, retries: int = 0, in_process: bool = False):
    """Declare a job for one institution: called as fn(institution_id, *args), it runs as
    fn(institution, *args) inside `bound(institution)`, as one unit of work (commit on
    success, rollback on error). A job for an institution that no longer exists does
    nothing. `in_process`: the worker runs it in its own process, not in a work horse
    forked for it (see `run_worker`)."""

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

        return _declare(fn, run, queue, timeout, retries, True, in_process)

    return decorator


def platform_job(queue: str = "default", timeout: int = 120, retries: int = 0):
    """Declare a job that works across institutions (a sweeper): no institution is bound
    and it runs on the platform database role (db.platform()), which row-level security
    does not limit; what it finds it hands on to `@job`s, one per institution."""

    def decorator(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            with db.platform(), _unit_of_work():
                result = fn(*args, **kwargs)
                db.session.commit()
                return result

        return _declare(fn, run, queue, timeout, retries, False)

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


def job_is_alive(job_id: str) -> bool:
    """Whether the job with this id is on its way: queued, deferred, scheduled for a time
    not long past, or running on a worker that still beats. A job STARTED by a worker that
    stopped beating (SIGKILLed) or ran past its timeout, or SCHEDULED long past its time
    (the scheduler is gone), is lost, and so is a job Redis no longer has."""
    connection = redis_connection.client
    try:
        job = Job.fetch(job_id, connection=connection)
    except NoSuchJobError:
        return False
    status = job.get_status(refresh=False)
    grace = current_app.config["JOB_LOST_AFTER_SECONDS"]
    now = datetime.now(UTC)
    if status in (JobStatus.QUEUED, JobStatus.DEFERRED):
        return True
    if status == JobStatus.SCHEDULED:
        due = connection.zscore(ScheduledJobRegistry(job.origin, connection=connection).key, job.id)
        return due is not None and due > now.timestamp() - grace
    if status == JobStatus.STARTED:
        beat = job.last_heartbeat or job.started_at
        if beat is None:
            return False
        beat = beat.replace(tzinfo=UTC) if beat.tzinfo is None else beat
        started = job.started_at.replace(tzinfo=UTC) if job.started_at else beat
        overran = job.timeout and started + timedelta(seconds=job.timeout + grace) < now
        return not overran and (now - beat).total_seconds() < grace
    return False


def redrive(name: str | Callable, *args, job_id: str) -> bool:
    """Enqueue the job `name` again unless it is on its way (`job_is_alive`): what the
    sweepers do for work whose job was lost to a flush, a restart or a killed worker.
    Every job is idempotent, so running twice is safe; returns whether it enqueued."""
    if job_is_alive(job_id):
        return False
    fn = _job_named(name)
    connection = redis_connection.client
    # Out of the registries that say it is running or waiting for its time: RQ's own
    # clean-up would otherwise fail (or retry) the old run after the new one is queued.
    started = StartedJobRegistry(fn.queue_name, connection=connection)
    for entry in connection.zrange(started.key, 0, -1):
        if entry.decode().split(":", 1)[0] == job_id:  # "<job id>:<execution id>"
            connection.zrem(started.key, entry)
    ScheduledJobRegistry(fn.queue_name, connection=connection).remove(job_id)
    enqueue(fn, *args, job_id=job_id)
    return True


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

SCHEDULER_LOCK = "cohort:scheduler"


def recoverable(error: BaseException) -> bool:
    """Errors a worker or the scheduler waits out (Redis or the database restarting)."""
    from sqlalchemy.exc import DBAPIError

    return isinstance(error, redis.RedisError | DBAPIError | OSError)


def run_worker(app, queues: tuple[str, ...] = QUEUES, burst: bool = False) -> None:
    """Run an RQ worker in an app context until it is told to stop (SIGTERM: it finishes
    the job in hand first). A Redis or database outage does not end it: RQ's worker
    returns or raises on a Redis error in the middle of a job, so a new worker starts
    after a backoff (1 s, doubling, at most 30 s). Run it under a supervisor all the same
    (README: systemd), for what no loop survives.

    RQ forks a work horse per job; the horse must not reuse the parent's database
    connections, so the engine's pool is discarded in the child right after the fork. The
    worker beats every JOB_MONITORING_SECONDS while a job runs, so the sweepers can tell a
    job whose worker was killed (app.jobs.job_is_alive) within JOB_LOST_AFTER_SECONDS.
    A job declared `in_process` runs in the worker's own process instead (`_Worker`).
    """
    with app.app_context():
        config = app.config
        engine = db.engine
        os.register_at_fork(after_in_child=lambda: engine.dispose(close=False))
        backoff = 1.0
        while True:
            worker = None
            try:
                connection = redis_connection.client
                worker = _Worker(
                    [Queue(name, connection=connection) for name in queues],
                    connection=connection,
                    worker_ttl=config["WORKER_TTL_SECONDS"],
                    job_monitoring_interval=config["JOB_MONITORING_SECONDS"],
                    maintenance_interval=config["WORKER_MAINTENANCE_SECONDS"],
                )
                worker.work(burst=burst, with_scheduler=False)
                if burst or _asked_to_stop(worker):
                    return
                log.warning("worker %s stopped on its own; starting a new one", worker.name)
            except Exception as error:
                if not recoverable(error) or (worker is not None and _asked_to_stop(worker)):
                    raise
                log.warning("worker: %s; trying again in %.0f s", error, backoff)
            time.sleep(backoff)
            backoff = min(backoff * 2, 30.0)


class _Worker(Worker):
    """RQ's worker, which forks a work horse for each job, but for a job declared
    `in_process`: that one runs in the worker's own process, as RQ's SimpleWorker runs
    every job. A fork costs the copies of the pages that the horse touches in a process of
    a hundred MiB or more, around 150 ms of CPU: on a machine the worker shares with web
    processes, a flash sale's writer woken by the first seat taken took it from the taps
    at the start of the sale. Such a job gets no beats while it runs (the forking worker
    beats while it waits for its horse), so the sweepers must know it on its way by
    another sign (the flash writer's lock). The session is removed after it, as a horse's
    goes with the horse."""

    def execute_job(self, job: Job, queue: Queue) -> None:
        if not _in_process(job):
            super().execute_job(job, queue)
            return
        try:
            SimpleWorker.execute_job(self, job, queue)
        finally:
            db.session.remove()

    def get_heartbeat_ttl(self, job: Job) -> int:
        if _in_process(job):
            return SimpleWorker.get_heartbeat_ttl(self, job)
        return super().get_heartbeat_ttl(job)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        if self.horse_pid:  # none for a job in process: not the worker's own group
            super().kill_horse(sig)


def _in_process(job: Job) -> bool:
    try:
        return job.func_name in IN_PROCESS
    except Exception:  # a job whose data cannot be read fails in the horse, as any other
        return False


def _asked_to_stop(worker: Worker) -> bool:
    """SIGTERM or SIGINT reached the worker (RQ records when, busy or idle)."""
    return worker._stop_requested or getattr(worker, "_shutdown_requested_date", None) is not None


AFTER_BURST: list[Callable] = []


def after_burst(fn: Callable) -> Callable:
    """Register work `run_burst` does after the queued jobs (the outbox's deliverer)."""
    AFTER_BURST.append(fn)
    return fn


def run_burst(queues: tuple[str, ...] = QUEUES) -> bool:
    """Move scheduled jobs that are due onto their queues, run every queued job in this
    process, then what is registered with `after_burst` (deliver the outbox), and return
    (the tests' worker)."""
    connection = redis_connection.client
    worker = SimpleWorker(
        [Queue(name, connection=connection) for name in queues], connection=connection
    )
    worked = worker.work(burst=True, with_scheduler=True)
    for fn in AFTER_BURST:
        fn()
    return worked


class Scheduler:
    """The one scheduler: it moves delayed jobs (`enqueue(..., at=)`) to their queues when
    they are due, and enqueues the PERIODIC jobs at their intervals. Only the holder of
    the Redis lock SCHEDULER_LOCK does either; the lock lives SCHEDULER_LOCK_SECONDS and
    its holder renews it every tick, so a second scheduler waits, and takes over within
    that time if the first one dies. A periodic job still on its way is not enqueued
    again, so an outage never piles them up."""

    def __init__(self, app, identity: str | None = None):
        self.app = app
        self.identity = identity or f"{os.uname().nodename}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.next_due: dict[str, float] = {}
        self.holds_lock = False
        self.stop_requested = False

    def _take_lock(self, connection) -> bool:
        ttl = self.app.config["SCHEDULER_LOCK_SECONDS"]
        # Renew our own lock, or take a free one; never take another holder's.
        held = connection.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then "
            "return redis.call('set', KEYS[1], ARGV[1], 'EX', ARGV[2]) else "
            "return redis.call('set', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) end",
            1,
            SCHEDULER_LOCK,
            self.identity,
            ttl,
        )
        return bool(held)

    def tick(self) -> None:
        connection = redis_connection.client
        holds = self._take_lock(connection)
        if holds != self.holds_lock:
            log.info(
                "scheduler %s %s", self.identity, "holds the lock" if holds else "waits for it"
            )
            self.holds_lock = holds
            self.next_due.clear()
        if not holds:
            return
        mover = RQScheduler(QUEUES, connection=connection)
        mover.prepare_registries(QUEUES)
        mover.enqueue_scheduled_jobs()
        now = time.monotonic()
        for entry in PERIODIC:
            name = entry.fn.job_name
            if now < self.next_due.get(name, 0.0):
                continue
            self.next_due[name] = now + self.app.config[entry.interval_config]
            if redrive(entry.fn, job_id="periodic-" + name.replace(".", "-")):
                log.info("scheduler: enqueued periodic %s", name)

    def release(self) -> None:
        connection = redis_connection.client
        connection.eval(
            "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) "
            "else return 0 end",
            1,
            SCHEDULER_LOCK,
            self.identity,
        )

    def run(self, tick_seconds: float = 1.0) -> None:
        signal.signal(signal.SIGTERM, lambda *_: setattr(self, "stop_requested", True))
        signal.signal(signal.SIGINT, lambda *_: setattr(self, "stop_requested", True))
        with self.app.app_context():
            backoff = 1.0
            while not self.stop_requested:
                try:
                    self.tick()
                    backoff = 1.0
                    time.sleep(tick_seconds)
                except Exception as error:
                    if not recoverable(error):
                        raise
                    log.warning("scheduler: %s; trying again in %.0f s", error, backoff)
                    self.holds_lock = False
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 30.0)
            with suppress(redis.RedisError):  # else the lock expires by itself
                self.release()


def run_scheduler(app) -> None:
    """Run the one scheduler (see Scheduler) until SIGTERM."""
    Scheduler(app).run()
