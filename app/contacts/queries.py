from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from sqlalchemy import Select, or_, select
from sqlalchemy.orm import aliased, selectinload

from app.contacts.models import (
    Contact,
    ContactEvent,
    ContactTag,
    ContactTouch,
    SourceKind,
    Student,
    Tag,
)
from app.db import paginate
from app.extensions import db
from app.tenancy import local_day_start, scoped_select


@dataclass
class ContactFilters:
    q: str = ""
    owner_id: int | None = None
    stage: str | None = None  # a pipeline stage (app.leads.models.Stage value)
    source: SourceKind | None = None
    tag: str = ""
    created_from: date | None = None
    created_to: date | None = None


def filtered_contacts(filters: ContactFilters) -> Select:
    """Contacts matching the staff list's search box and filters, newest first."""
    query = scoped_select(Contact)
    if filters.q:
        term = f"%{filters.q.strip()}%"
        digits = "".join(ch for ch in filters.q if ch.isdigit())
        student_match = select(Student.contact_id).where(Student.name.ilike(term))
        clauses = [
            Contact.parent_name.ilike(term),
            Contact.email.ilike(term),
            Contact.id.in_(student_match),
        ]
        if len(digits) >= 3:
            clauses.append(Contact.phone.contains(digits))
        query = query.where(or_(*clauses))
    if filters.owner_id:
        query = query.where(Contact.owner_id == filters.owner_id)
    if filters.stage:
        from app.leads.queries import contact_ids_in_stage  # leads build on contacts

        query = query.where(Contact.id.in_(contact_ids_in_stage(filters.stage)))
    if filters.source:
        first = aliased(ContactTouch)
        query = query.join(first, Contact.first_touch_id == first.id).where(
            first.kind == filters.source
        )
    if filters.tag:
        query = query.where(Contact.tag_links.any(ContactTag.tag.has(Tag.name == filters.tag)))
    if filters.created_from:
        query = query.where(Contact.created_at >= local_day_start(filters.created_from))
    if filters.created_to:
        query = query.where(
            Contact.created_at < local_day_start(filters.created_to + timedelta(days=1))
        )
    return query.order_by(Contact.created_at.desc(), Contact.id.desc())


def page_of(query: Select, page: int, per_page: int = 50):
    """A page of the list, with what each row shows loaded up front."""
    return paginate(
        query.options(
            selectinload(Contact.students),
            selectinload(Contact.tag_links),
            selectinload(Contact.first_touch),
            selectinload(Contact.owner),
        ),
        page,
        per_page,
    )


def timeline(contact: Contact) -> list[ContactEvent]:
    return list(
        db.session.scalars(
            scoped_select(ContactEvent)
            .where(ContactEvent.contact_id == contact.id)
            .options(selectinload(ContactEvent.actor))
            .order_by(ContactEvent.created_at.desc(), ContactEvent.id.desc())
        )
    )


def touches(contact: Contact) -> list[ContactTouch]:
    return list(
        db.session.scalars(
            scoped_select(ContactTouch)
            .where(ContactTouch.contact_id == contact.id)
            .order_by(ContactTouch.created_at.desc())
        )
    )


def tag_names() -> list[str]:
    return list(
        db.session.scalars(scoped_select(Tag).with_only_columns(Tag.name).order_by(Tag.name))
    )


def contact_by_phone_in_current(phone: str) -> Contact | None:
    return db.session.scalar(scoped_select(Contact).where(Contact.phone == phone))
