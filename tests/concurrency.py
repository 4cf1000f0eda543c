"""Helpers for tests that need real commits from real parallel requests.

Most tests run inside one rolled-back transaction, which cannot show what happens when
two requests race. A test marked `@pytest.mark.committed` runs without it (see conftest),
so every request (each in its own thread, app context and database connection) commits
for real; `committed_data` then deletes the institutions the test made (the schema
cascades) and the users it made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from contextlib import contextmanager

from sqlalchemy import delete

from app.accounts.models import User
from app.extensions import db
from app.institutions.models import Institution


@contextmanager
def committed_data():
    made: dict[str, list[int]] = {"institutions": [], "users": []}
    try:
        yield made
    finally:
        db.session.remove()
        with db.engine.begin() as connection:
            if made["institutions"]:
                connection.execute(
                    delete(Institution.__table__).where(
                        Institution.__table__.c.id.in_(made["institutions"])
                    )
                )
            if made["users"]:
                connection.execute(
                    delete(User.__table__).where(User.__table__.c.id.in_(made["users"]))
                )


def run_in_parallel(count: int, work: Callable[[int], object]) -> list:
    """Start `count` threads at the same instant, each calling work(i); return the results
    in order (an exception is returned, not raised)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results
