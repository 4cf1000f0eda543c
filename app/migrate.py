"""Alembic from Python: the same migrations the `alembic` command runs, for the dev
command, the CLI and the tests."""

from __future__ import annotations

from alembic import command
from alembic.config import Config

from app.config import PROJECT_ROOT


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str | None = None, revision: str = "head") -> None:
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str | None = None, revision: str = "base") -> None:
    command.downgrade(alembic_config(database_url), revision)


def revision_module(revision: str):
    """The module of one revision, for what it defines beside its upgrade (a backfill that
    the benchmarks run on generated data, and the tests compare with the services)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config()).get_revision(revision).module


def grant(database_url: str, *roles: str) -> None:
    """Let `roles` (the application's and the platform's, which the database's
    administrator created: README, "Database roles") read and write every table of the
    schema, now and in later migrations. Run as the role that owns the tables."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    try:
        with engine.begin() as connection:
            for role in roles:
                quoted = connection.dialect.identifier_preparer.quote(role)
                for statement in (
                    f"GRANT USAGE ON SCHEMA public TO {quoted}",
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public "
                    f"TO {quoted}",
                    f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA public TO {quoted}",
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                    f"GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO {quoted}",
                    f"ALTER DEFAULT PRIVILEGES IN SCHEMA public "
                    f"GRANT USAGE, SELECT ON SEQUENCES TO {quoted}",
                ):
                    connection.execute(text(statement))
    finally:
        engine.dispose()
