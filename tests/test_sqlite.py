"""Development runs on SQLite: its connections must not lock each other out."""

from __future__ import annotations

import sqlite3

import pytest

from app.db import _engine


def test_an_autocommit_connection_holds_no_write_lock_between_its_statements(tmp_path):
    """The deliverer marks messages sent on an AUTOCOMMIT connection it keeps while it
    waits for work: the web server and the worker must still be able to write."""
    path = tmp_path / "dev.db"
    engine = _engine(f"sqlite:///{path}")
    with engine.begin() as connection:
        connection.exec_driver_sql("CREATE TABLE marks (n INTEGER)")

    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as deliverer:
        deliverer.exec_driver_sql("INSERT INTO marks VALUES (1)")
        other = sqlite3.connect(path, timeout=0.2, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")  # "database is locked" if the lock were held
            other.execute("INSERT INTO marks VALUES (2)")
            other.execute("COMMIT")
        except sqlite3.OperationalError as error:
            pytest.fail(f"the autocommit connection holds the write lock: {error}")
        finally:
            other.close()
        deliverer.exec_driver_sql("INSERT INTO marks VALUES (3)")

    with engine.connect() as connection:
        assert connection.exec_driver_sql("SELECT count(*) FROM marks").scalar() == 3
    engine.dispose()
