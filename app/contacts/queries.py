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
from app.db import scoped_select
from app.extensions import db
from app.localtime import local_day_start
from app.paging import Page, paginate


@dataclass
class ContactFilters:
    q: str = ""
    owner_id: int | None = None
    among: Select | None = None  # contact ids to keep (those in a pipeline stage, say)
    source: SourceKind | None = None
    tag: str = ""
    created_from: date | None = None
    created_to: date | None = None


def filtered_contacts(institution, filters: ContactFilters) -> Select:
    """The institution's contacts matching the staff list's search box and filters, newest
    first."""
    query = scoped_select(Contact, institution)
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
    if filters.among is not None:
        query = query.where(Contact.id.in_(filters.among))
    if filters.source:
        first = aliased(ContactTouch)
        query = query.join(first, Contact.first_touch_id == first.id).where(
            first.kind == filters.source
        )
    if filters.tag:
        query = query.where(Contact.tag_links.any(ContactTag.tag.has(Tag.name == filters.tag)))
    if filters.created_from:
        query = query.where(
            Contact.created_at >= local_day_start(filters.created_from, institution.zone)
        )
    if filters.created_to:
        query = query.where(
            Contact.created_at
            < local_day_start(filters.created_to + timedelta(days=1), institution.zone)
        )
    return query.order_by(Contact.created_at.desc(), Contact.id.desc())


def page_of(query: Select, page: int, per_page: int) -> Page:
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
            select(ContactEvent)
            .where(ContactEvent.institution_id == contact.institution_id)
            .where(ContactEvent.contact_id == contact.id)
            .options(selectinload(ContactEvent.actor))
            .order_by(ContactEvent.created_at.desc(), ContactEvent.id.desc())
        )
    )


def touches(contact: Contact) -> list[ContactTouch]:
    return list(
        db.session.scalars(
            select(ContactTouch)
            .where(ContactTouch.institution_id == contact.institution_id)
            .where(ContactTouch.contact_id == contact.id)
            .order_by(ContactTouch.created_at.desc())
        )
    )


def tag_names(institution) -> list[str]:
    return list(
        db.session.scalars(
            scoped_select(Tag, institution).with_only_columns(Tag.name).order_by(Tag.name)
        )
    )


def contact_by_phone(institution, phone: str) -> Contact | None:
    """The institution's contact with this E.164 number."""
    return db.session.scalar(scoped_select(Contact, institution).where(Contact.phone == phone))
