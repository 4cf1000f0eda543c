"""`alembic upgrade head` on an empty database gives exactly the models' schema, and every
revision goes back down."""

from __future__ import annotations

import uuid

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from app import migrate
from app.db import Base


@pytest.fixture
def empty_database_url(database_url, tmp_path):
    """A brand-new database on the same server as the test database."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"cohort_migrations_{uuid.uuid4().hex[:8]}"
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_upgrade_head_matches_the_models_and_downgrades_cleanly(empty_database_url):
    migrate.upgrade(empty_database_url)
    engine = create_engine(empty_database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations differ: {diff}"

        migrate.downgrade(empty_database_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()


def test_the_revisions_of_the_one_domain_shape_keep_existing_rows(empty_database_url):
    """pay_by is filled in for payments made before it existed, and composite tenant keys
    are added to (and taken from) a database that holds rows."""
    from datetime import UTC, datetime

    from sqlalchemy import MetaData, insert, select
    from sqlalchemy.exc import IntegrityError

    before = "1d45fe8a02c9"
    migrate.upgrade(empty_database_url, before)
    engine = create_engine(empty_database_url)
    created = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    try:
        tables = MetaData()
        tables.reflect(engine)
        with engine.begin() as connection:
            for institution_id in (1, 2):
                connection.execute(
                    insert(tables.tables["institutions"]).values(
                        id=institution_id,
                        name=f"School {institution_id}",
                        slug=f"school-{institution_id}",
                        timezone="Asia/Shanghai",
                        currency="CNY",
                        locale="zh_CN",
                        country="CN",
                        created_at=created,
                        updated_at=created,
                    )
                )
            connection.execute(
                insert(tables.tables["contacts"]).values(
                    id=10,
                    institution_id=1,
                    parent_name="Wang",
                    phone="+8613800138000",
                    referral_code="ref10",
                    staff_edited=[],
                    created_at=created,
                    updated_at=created,
                )
            )
            connection.execute(
                insert(tables.tables["payments"]).values(
                    id=20,
                    institution_id=1,
                    purpose="group_buy",
                    reference=1,
                    contact_id=10,
                    amount=19900,
                    currency="CNY",
                    is_manual_capture=True,
                    status="pending",
                    created_at=created,
                    updated_at=created,
                )
            )

        migrate.upgrade(empty_database_url)
        tables = MetaData()
        tables.reflect(engine)
        payments, students = tables.tables["payments"], tables.tables["students"]
        with engine.connect() as connection:
            pay_by = connection.scalar(select(payments.c.pay_by).where(payments.c.id == 20))
        assert pay_by.replace(tzinfo=UTC) == datetime(2026, 11, 20, 8, 15, tzinfo=UTC)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                connection.exec_driver_sql("PRAGMA foreign_keys=ON")
            connection.execute(  # institution 2's child of institution 1's contact
                insert(students).values(
                    institution_id=2, contact_id=10, name="Not theirs", created_at=created
                )
            )

        migrate.downgrade(empty_database_url, before)
        with engine.connect() as connection:
            assert connection.exec_driver_sql("SELECT count(*) FROM payments").scalar() == 1
            assert connection.exec_driver_sql("SELECT count(*) FROM contacts").scalar() == 1
    finally:
        engine.dispose()
