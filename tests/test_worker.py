"""The RQ worker forks a work horse for each job, but for a job declared to run in the
worker's own process (app.jobs._Worker): there, a fork would cost more than the job."""

from __future__ import annotations

import os

from rq import Queue

from app.extensions import redis_connection
from app.jobs import IN_PROCESS, _Worker


def process_id() -> int:
    return os.getpid()


def process_id_in_process() -> int:
    return os.getpid()


def test_a_job_declared_in_process_runs_in_the_workers_own_process_and_others_in_a_horse(
    monkeypatch,
):
    monkeypatch.setattr("app.jobs.IN_PROCESS", {f"{__name__}.process_id_in_process"})
    queue = Queue("default", connection=redis_connection.client)
    forked, in_process = queue.enqueue(process_id), queue.enqueue(process_id_in_process)

    _Worker([queue], connection=redis_connection.client).work(burst=True)

    assert in_process.return_value(refresh=True) == os.getpid()
    assert forked.return_value(refresh=True) not in (None, os.getpid())


def test_only_the_flash_sales_writer_runs_in_the_workers_process():
    """It is woken at a sale's start, when the web processes need the machine most."""
    assert sorted(IN_PROCESS) == ["app.campaigns.tasks.write_flash_orders"]
