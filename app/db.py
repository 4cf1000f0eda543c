"""Database core: the declarative Base, the TenantScoped mixin and the unit of work.

House rule: services change state and `flush()`; only the end of a request (the view) or
the end of a job (`app.jobs.job`) commits, once. Work that must happen after the commit is
registered with `after_commit()` so it never runs before the rows it needs are visible.
"""

from __future__ import annotations

import enum
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from copy import copy
from datetime import UTC, datetime
from typing import TypeVar

from sqlalchemy import (
    DateTime,
    Enum,
    ForeignKey,
    ForeignKeyConstraint,
    MetaData,
    Select,
    UniqueConstraint,
    create_engine,
    event,
    func,
    select,
)
from sqlalchemy import inspect as sqlalchemy_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    declared_attr,
    make_transient_to_detached,
    mapped_column,
    object_session,
    scoped_session,
    sessionmaker,
    with_loader_criteria,
)
from sqlalchemy.sql.expression import Executable
from sqlalchemy.types import TypeDecorator

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    # column_0_N_name: a composite key (institution_id, parent_id) is named by both columns.
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """A timezone-aware UTC timestamp on every backend.

    PostgreSQL stores `timestamptz`; SQLite has no time zones and hands back naive values,
    so they are read back as UTC. Naive values are refused on the way in: a naive datetime
    is a bug (whose clock was it?).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTCDateTime column")
        return value.astimezone(UTC)

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def str_enum(enum_class: type[enum.Enum]) -> Enum:
    """A column type for a StrEnum: stored as its values in a VARCHAR (no native ENUM type,
    so adding a state is a plain migration), checked on the way in."""
    return Enum(
        enum_class,
        native_enum=False,
        length=16,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


def scoped_select(model, institution) -> Select:
    """`select(model)` limited to one institution's rows."""
    return select(model).where(model.institution_id == institution.id)


def assign(row, values: dict) -> None:
    """Set `row`'s columns from `values` (a service's keyword arguments), refusing any name
    that is not one of its mapped columns, so a typo is an error, not a stray attribute."""
    columns = row.__mapper__.columns.keys()
    unknown = set(values) - set(columns)
    if unknown:
        raise TypeError(f"{type(row).__name__} has no column {sorted(unknown)}")
    for name, value in values.items():
        setattr(row, name, value)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


class TenantScoped:
    """Mixin for every row an institution owns.

    `institution_id` is NOT NULL and indexed; while an institution is bound to the session
    (`app.tenancy.bound`), every ORM SELECT of a TenantScoped class is filtered to
    it, a safety net under the scoped lookups rather than a replacement for them.

    In the schema, every tenant table is UNIQUE on (institution_id, id), and a reference to
    another tenant row (a `parent_id` column) is a foreign key on (institution_id, that
    column) to the parent's (institution_id, id): the database itself refuses a child
    whose institution differs from its parent's.
    """

    @declared_attr
    def institution_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(
            ForeignKey("institutions.id", ondelete="CASCADE"), index=True, nullable=False
        )

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)  # the declarative base maps the class first
        table = cls.__dict__.get("__table__")
        if table is None:
            return
        if "id" in table.c:
            table.append_constraint(UniqueConstraint("institution_id", "id"))
        for column in table.c:
            if "tenant_parent" not in column.info:
                continue
            target, ondelete, use_alter = column.info["tenant_parent"]
            table.append_constraint(
                ForeignKeyConstraint(
                    ["institution_id", column.name],
                    [f"{target}.institution_id", f"{target}.id"],
                    ondelete=ondelete,
                    use_alter=use_alter,
                )
            )


def parent_id(
    target: str,
    *,
    ondelete: str | None = None,
    index: bool = False,
    use_alter: bool = False,
    primary_key: bool = False,
):
    """A column naming a row of the tenant table `target` of the same institution (see
    TenantScoped). `ondelete="CASCADE"` for a child that goes with its parent; a nullable
    reference has no ON DELETE action (SET NULL would also clear institution_id), so a
    parent referenced that way is never deleted alone (a merged contact's references are
    moved to the survivor first)."""
    return mapped_column(
        index=index,
        primary_key=primary_key,
        info={"tenant_parent": (target, ondelete, use_alter)},
    )


class Database:
    """Engines plus a request/job-scoped session, bound to an app by `init_app`.

    On PostgreSQL the application connects as a role that row-level security limits to
    the rows of the institution its transaction names (`app.institution_id`, set from the
    session's `row_context` at the start of every transaction: see `set_row_context`),
    and the sweepers that look across institutions use a second engine, on the platform
    role, which bypasses it (PLATFORM_DATABASE_URL; `platform()`).
    """

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.platform_engine: Engine | None = None
        self.session_factory = sessionmaker()
        self.platform_factory = sessionmaker()
        # One session per app context (a request, a job run, a CLI command), as
        # Flask-SQLAlchemy does; removed when the context ends.
        self.session = scoped_session(self.session_factory, scopefunc=_app_context_id)

    def init_app(self, app) -> None:
        url = app.config["DATABASE_URL"]
        self.engine = _engine(url)
        platform_url = app.config["PLATFORM_DATABASE_URL"] or url
        self.platform_engine = self.engine if platform_url == url else _engine(platform_url)
        self.session_factory.configure(bind=self.engine)
        self.platform_factory.configure(bind=self.platform_engine)

        @app.teardown_appcontext
        def remove_session(exc: BaseException | None) -> None:
            # Anything not committed by the view is rolled back here.
            self.session.remove()

    @property
    def enforces_row_security(self) -> bool:
        return self.engine is not None and self.engine.dialect.name == "postgresql"

    def set_row_context(self, key: str, value: int | None) -> None:
        """Name the institution (ROW_CONTEXT["institution_id"]) or the signed-in user
        ("user_id") whose rows this session's transactions may see. Applied at the start
        of every transaction, and at once to the transaction in progress."""
        if value is None:
            self.session.info.pop(key, None)
        else:
            self.session.info[key] = value
        connection = self.session().info.get(_CONNECTION_KEY)
        if connection is None or not self.enforces_row_security:
            return
        if connection.closed or connection.invalidated:
            return  # lost with its transaction (the database went away): nothing to name
        _apply_row_context(self.session(), connection)

    def insert_unless_exists(self, model, values: dict, conflict: list[str], where=None):
        """INSERT a row unless one with the same `conflict` columns (a unique constraint
        or, with `where`, a partial unique index) exists: what a concurrent request for
        the same family may have made a moment ago. One statement, no savepoint. Returns
        the new row, in the session, or None if one existed."""
        session = self.session()
        dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
        statement = (
            dialect.insert(model)
            .values(**values)
            .on_conflict_do_nothing(index_elements=conflict, index_where=where)
            .returning(model)
        )
        row = session.scalars(statement).one_or_none()
        if row is not None:
            _created(session).add(row)
        return row

    def adopt(self, model, values: dict):
        """A row that a statement of our own has just inserted (`values`: every column it
        was given, its id too; a column missing is an error, not a NULL), as a persistent
        object of the session, counted as created in this transaction: what one INSERT of
        several tables returns, without a SELECT to load each row. The session did not
        insert it, so a rollback does not take it out of the session (its id is never
        given to another row)."""
        missing = {attribute.key for attribute in sqlalchemy_inspect(model).column_attrs}
        missing -= values.keys()
        if missing:
            raise ValueError(f"{model.__name__} adopted without {sorted(missing)}")
        row = model(**values)
        make_transient_to_detached(row)  # as if just loaded: nothing pending, nothing expired
        session = self.session()
        session.add(row)
        _created(session).add(row)
        return row

    @contextmanager
    def committed_one_by_one(self) -> Iterator[Callable[[Executable, dict], None]]:
        """A function that runs a statement and commits it at once, for the block: for a
        run of small records written one by one as work goes (a deliverer marking each
        message sent), at one round trip each rather than a pool checkout, a BEGIN and a
        COMMIT. It holds one connection of the session's engine (the platform role's
        inside `platform()`) in autocommit mode. A session bound to a connection of its
        own (the tests') runs and commits each statement in the session instead, and so
        does SQLite (development): its one writer at a time would be the session's own
        transaction (a read in between, say rendering a message, holds the write lock
        there: app.db._sqlite_begin), and the second connection would wait for it."""
        bind = self.session.get_bind()
        if not isinstance(bind, Engine) or bind.dialect.name == "sqlite":

            def in_the_session(statement: Executable, parameters: dict) -> None:
                self.session.execute(statement, parameters)
                self.session.commit()

            yield in_the_session
            return
        with bind.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            yield lambda statement, parameters: connection.execute(statement, parameters)

    @contextmanager
    def platform(self) -> Iterator[Session]:
        """Until the block ends, `db.session` is a session on the platform role, which
        row-level security does not limit: for the sweepers that look across
        institutions and hand each one's work to a job bound to it, and nothing else.
        Without a PLATFORM_DATABASE_URL of its own (SQLite, tests) it is the same
        session."""
        if self.platform_engine is self.engine:
            yield self.session()
            return
        registry = self.session.registry
        outer = registry() if registry.has() else None
        session = self.platform_factory()
        registry.set(session)
        try:
            yield session
        finally:
            session.close()
            if outer is None:
                registry.clear()
            else:
                registry.set(outer)


def _engine(url: str) -> Engine:
    kwargs: dict = {"future": True}
    if url.startswith("sqlite"):
        # One connection file, shared by threads of the dev server; busy timeout instead
        # of "database is locked" errors when the worker writes at the same time.
        kwargs["connect_args"] = {"check_same_thread": False, "timeout": 15}
    else:
        kwargs["pool_pre_ping"] = True
    engine = create_engine(url, **kwargs)
    if url.startswith("sqlite"):
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _app_context_id() -> int:
    from flask.globals import _cv_app

    return id(_cv_app.get(None))


def _sqlite_connect(dbapi_connection, _record) -> None:
    # pysqlite's own transaction handling breaks SAVEPOINTs; take it over (the recipe in
    # SQLAlchemy's SQLite dialect documentation) and begin transactions ourselves.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.close()


def _sqlite_begin(connection) -> None:
    # IMMEDIATE takes the write lock up front, so the web server and the worker wait for
    # each other (busy timeout) instead of failing when a reader tries to become a writer.
    # Not on an AUTOCOMMIT connection (committed_one_by_one): SQLAlchemy never commits one,
    # so its BEGIN would hold the write lock for as long as the connection is used (the
    # deliverer's, while it waits for work), and every other writer would time out.
    if connection.get_execution_options().get("isolation_level") == "AUTOCOMMIT":
        return
    connection.exec_driver_sql("BEGIN IMMEDIATE")


# --- unit of work -------------------------------------------------------------------------

_AFTER_COMMIT_KEY = "cohort_after_commit"


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` once the session's current transaction commits; drop it on rollback."""
    session.info.setdefault(_AFTER_COMMIT_KEY, []).append(callback)


_AFTER_ROLLBACK_KEY = "cohort_after_rollback"


def after_rollback(session: Session, callback: Callable[[], None]) -> None:
    """Run `callback` if the session's current transaction rolls back (undo, outside the
    database, what the transaction did there: a seat taken in Redis); drop it on commit."""
    session.info.setdefault(_AFTER_ROLLBACK_KEY, []).append(callback)


@event.listens_for(Session, "after_commit")
def _run_after_commit(session: Session) -> None:
    session.info.pop(_AFTER_ROLLBACK_KEY, None)
    callbacks = session.info.pop(_AFTER_COMMIT_KEY, [])
    for callback in callbacks:
        callback()


@event.listens_for(Session, "after_soft_rollback")
def _drop_after_commit(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_AFTER_COMMIT_KEY, None)
        for callback in session.info.pop(_AFTER_ROLLBACK_KEY, []):
            callback()


@contextmanager
def savepoint(session: Session) -> Iterator[None]:
    """A savepoint for a `with` block whose failure the transaction survives. What the
    block left in `session.info` for the commit (callbacks, outbox messages, a new
    family's progress row, pages gone stale: lists, dicts and sets, by this module's and
    the domains' hooks) goes
    with its rows, so a block rolled back leaves nothing behind that names them."""
    kept = {key: (value, copy(value)) for key, value in session.info.items() if _accumulates(value)}
    try:
        with session.begin_nested():
            yield
    except BaseException:
        for key in [k for k, v in session.info.items() if _accumulates(v) and k not in kept]:
            del session.info[key]
        for key, (value, before) in kept.items():
            # The same object, as it was (callbacks registered before may hold it).
            value.clear()
            if isinstance(value, list):
                value.extend(before)
            else:
                value.update(before)
            session.info[key] = value
        raise


def _accumulates(value) -> bool:
    return isinstance(value, list | dict | set)


# --- rows made in this transaction ------------------------------------------------------------

_CREATED_KEY = "cohort_created"


def created_in_this_transaction(obj) -> bool:
    """Whether `obj` was inserted by its session's current transaction: a family created
    a moment ago has no leads, enrolments or places yet, so nothing needs looking up."""
    session = object_session(obj)
    created = session.info.get(_CREATED_KEY) if session is not None else None
    return created is not None and obj in created


def _created(session: Session) -> weakref.WeakSet:
    return session.info.setdefault(_CREATED_KEY, weakref.WeakSet())


@event.listens_for(Session, "after_flush")
def _remember_created(session: Session, _flush_context) -> None:
    if session.new:
        _created(session).update(session.new)


_MEMO_KEY = "cohort_memo"


def transaction_memo(session: Session) -> dict:
    """A dict that lives as long as the session's current transaction: for what one
    transaction reads again and again and cannot change under it (an institution's
    reminder settings, read once per seat)."""
    return session.info.setdefault(_MEMO_KEY, {})


T = TypeVar("T")


def once_per_transaction(session: Session, key: tuple, load: Callable[[], T]) -> T:
    """load() the first time the current transaction asks for `key`, the same object after."""
    memo = transaction_memo(session)
    if key not in memo:
        memo[key] = load()
    return memo[key]


def lock_for_transaction(session: Session, name: str) -> None:
    """Hold a lock named `name` until the current transaction ends (PostgreSQL's advisory
    lock): for what must not happen twice at once but has no row to lock (a family
    sending the same form twice). SQLite takes the whole database for every write
    transaction anyway (BEGIN IMMEDIATE), so there it does nothing."""
    if session.bind.dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(func.hashtextextended(name, 0))))


# --- tenancy safety net ---------------------------------------------------------------------

TENANT_KEY = "institution_id"
USER_KEY = "user_id"
# What PostgreSQL's row-level security policies read (migrations: row_level_security).
ROW_CONTEXT = {TENANT_KEY: "app.institution_id", USER_KEY: "app.user_id"}


def _apply_row_context(session: Session, connection) -> None:
    values = {setting: str(session.info.get(key) or "") for key, setting in ROW_CONTEXT.items()}
    connection.exec_driver_sql(
        "SELECT set_config('app.institution_id', %(app.institution_id)s, true), "
        "set_config('app.user_id', %(app.user_id)s, true)",
        values,
    )


# The connection of the session's transaction in progress, if it has one yet (a session
# "begins" as soon as an object is added, but the database hears of it only when a
# statement is sent).
_CONNECTION_KEY = "cohort_connection"


@event.listens_for(Session, "after_begin")
def _row_context_for_each_transaction(session: Session, transaction, connection) -> None:
    """SET LOCAL the institution and user of the session for the transaction beginning:
    PostgreSQL's policies admit only their rows (nothing, when nothing is set)."""
    if transaction.nested:  # a SAVEPOINT: the transaction around it has the settings
        return
    session.info[_CONNECTION_KEY] = connection
    if connection.dialect.name == "postgresql":
        _apply_row_context(session, connection)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction) -> None:
    """What lived as long as the transaction: its connection, its new rows, its memo."""
    if transaction.parent is None:
        for key in (_CONNECTION_KEY, _CREATED_KEY, _MEMO_KEY):
            session.info.pop(key, None)


@event.listens_for(Session, "do_orm_execute")
def _limit_to_bound_institution(state: ORMExecuteState) -> None:
    institution_id = state.session.info.get(TENANT_KEY)
    if (
        institution_id is None
        or not state.is_select
        or state.is_column_load
        or state.is_relationship_load
        or state.execution_options.get("all_institutions", False)
    ):
        return
    state.statement = state.statement.options(
        with_loader_criteria(
            TenantScoped,
            lambda cls: cls.institution_id == institution_id,
            include_aliases=True,
        )
    )
