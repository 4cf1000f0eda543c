"""Alembic environment: the database URL comes from Cohort's own config (DATABASE_URL),
unless a caller set sqlalchemy.url (the tests do, for a throwaway database)."""

from __future__ import annotations

import logging.config

from alembic import context
from sqlalchemy import create_engine, pool

from app import models  # noqa: F401 - imports every model so the metadata is complete
from app.config import load_config, sqlalchemy_url
from app.db import Base, UTCDateTime

config = context.config
if config.config_file_name and not logging.getLogger().handlers:
    logging.config.fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = Base.metadata


def database_url() -> str:
    return sqlalchemy_url(config.get_main_option("sqlalchemy.url") or load_config()["DATABASE_URL"])


def render_item(type_, obj, autogen_context):
    """Write our UTCDateTime as the plain timestamptz it is, so revisions do not import app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run_migrations_offline() -> None:
    context.configure(
        url=database_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    url = database_url()
    engine = create_engine(url, poolclass=pool.NullPool)
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            # SQLite cannot ALTER most things; batch mode rebuilds tables instead.
            render_as_batch=url.startswith("sqlite"),
            compare_type=True,
            render_item=render_item,
        )
        with context.begin_transaction():
            context.run_migrations()
    engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
