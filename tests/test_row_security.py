"""PostgreSQL itself keeps institutions apart: connected as the application's role, raw
SQL, a bulk UPDATE and a bulk DELETE with institution A named touch none of B's rows, and
with no institution named nothing is visible. (The ORM filter and the scoped lookups are
the first layers; this is the one that raw SQL and bulk statements cannot get around.)"""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, func, select, text, update
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ProgrammingError
from sqlalchemy.orm import Session

from app import migrate
from app.contacts.models import Contact, ContactEvent, SourceKind
from app.contacts.services import ContactDetails, Touch, find_or_create_contact
from app.db import ROW_CONTEXT, TENANT_KEY
from app.extensions import db
from app.tenancy import bound
from tests.helpers import ON_POSTGRESQL, committed_data, committed_institution

pytestmark = [
    pytest.mark.committed,
    pytest.mark.skipif(not ON_POSTGRESQL, reason="row-level security is PostgreSQL's"),
]
APP_ROLE = "cohort_test_app"


@pytest.fixture
def two_schools(database_url):
    """Institutions A and B, committed, with three families each; and an engine on the
    database connected as a role that owns nothing, is no superuser and has no BYPASSRLS."""
    with db.engine.begin() as connection:
        exists = connection.scalar(
            text("SELECT 1 FROM pg_roles WHERE rolname = :r"), {"r": APP_ROLE}
        )
        if not exists:
            connection.execute(text(f"CREATE ROLE {APP_ROLE} LOGIN NOSUPERUSER NOBYPASSRLS"))
    migrate.grant(database_url, APP_ROLE)
    with committed_data() as made:
        schools = []
        for _ in range(2):
            institution = committed_institution(made)
            with bound(institution):
                for n in range(3):
                    find_or_create_contact(
                        institution,
                        phone=f"1380013{institution.id % 100:02d}{n:02d}",
                        details=ContactDetails(parent_name=f"Parent {n}"),
                        touch=Touch(SourceKind.STAFF),
                    )
                db.session.commit()
            schools.append(institution.id)
        db.session.remove()
        engine = create_engine(make_url(database_url).set(username=APP_ROLE))
        try:
            yield schools, engine
        finally:
            engine.dispose()


def as_institution(connection, institution_id: int | None) -> None:
    """What Cohort does at the start of every transaction (app.db)."""
    connection.execute(
        text("SELECT set_config(:setting, :value, true)"),
        {"setting": ROW_CONTEXT[TENANT_KEY], "value": str(institution_id or "")},
    )


def contacts_of(institution_id: int) -> list:
    return db.session.execute(
        select(Contact.parent_name, Contact.notes).where(Contact.institution_id == institution_id)
    ).all()


def test_raw_sql_bulk_update_and_bulk_delete_touch_only_the_named_institution(two_schools):
    (a, b), engine = two_schools
    b_before = contacts_of(b)
    with engine.begin() as connection:
        as_institution(connection, a)
        assert connection.scalar(text("SELECT count(*) FROM contacts")) == 3
        assert {
            row.institution_id for row in connection.execute(text("SELECT * FROM contacts"))
        } == {a}
        updated = connection.execute(text("UPDATE contacts SET notes = 'changed by A'"))
        deleted = connection.execute(text("DELETE FROM contact_events"))
        assert updated.rowcount == 3
        assert deleted.rowcount == connection.scalar(text("SELECT 0")) + deleted.rowcount
    db.session.expire_all()
    assert contacts_of(b) == b_before  # not one of B's rows changed
    assert (
        db.session.scalar(
            select(func.count()).select_from(ContactEvent).where(ContactEvent.institution_id == b)
        )
        > 0
    )  # B's timeline is whole
    assert {notes for _name, notes in contacts_of(a)} == {"changed by A"}


def test_a_bulk_update_through_the_orm_with_a_named_stays_in_a(two_schools):
    (a, b), engine = two_schools
    b_before = contacts_of(b)
    with Session(engine) as session, session.begin():
        as_institution(session.connection(), a)
        result = session.execute(update(Contact).values(notes="bulk"))
        assert result.rowcount == 3
    db.session.expire_all()
    assert contacts_of(b) == b_before


def test_with_no_institution_named_nothing_is_visible_or_writable(two_schools):
    (a, b), engine = two_schools
    with engine.begin() as connection:
        as_institution(connection, None)
        assert connection.scalar(text("SELECT count(*) FROM contacts")) == 0
        assert connection.execute(text("UPDATE contacts SET notes = 'x'")).rowcount == 0
    with pytest.raises(ProgrammingError, match="row-level security"), engine.begin() as connection:
        as_institution(connection, a)  # writing a row of B while A is named is refused
        connection.execute(
            text("INSERT INTO tags (institution_id, name) VALUES (:b, 'not yours')"),
            {"b": b},
        )
