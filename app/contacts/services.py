"""Finding, creating, editing and merging contacts.

Every public action (a form submission, a trial registration, a group-buy join, a
flash-sale purchase) goes through `find_or_create_contact`, so one family is one record
however it arrives.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, case, event, or_, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from app import tokens
from app.contacts.models import (
    MERGEABLE_FIELDS,
    PROGRESS_SOURCE,
    PROGRESS_STAGES,
    Contact,
    ContactEvent,
    ContactTouch,
    EventKind,
    FamilyDetails,
    FamilyProgress,
    SourceKind,
    Student,
    Tag,
    new_referral_code,
    referrer_family,
)
from app.contacts.queries import contact_by_phone
from app.db import Base, UTCDateTime, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.phones import e164
from app.text import clean_line
from app.urls import external_url

INVALID_PHONE = _l("Enter a valid phone number.")


@dataclass(frozen=True)
class Touch:
    """Where an action came from."""

    kind: SourceKind
    ref: str | None = None
    referral_code: str | None = None
    utm_source: str | None = None
    utm_medium: str | None = None
    utm_campaign: str | None = None
    referrer: str | None = None

    @classmethod
    def from_request(cls, kind: SourceKind, ref: str | None, args, referrer: str | None):
        """A touch from a public page's query string (?ref=, utm_*) and Referer header,
        cut to the columns' sizes: these come from anyone's link."""

        def arg(name: str, size: int = 100) -> str | None:
            value = clean_line(args.get(name) or "").strip()
            return value[:size] or None

        return cls(
            kind=kind,
            ref=ref,
            referral_code=arg("ref", 64),
            utm_source=arg("utm_source"),
            utm_medium=arg("utm_medium"),
            utm_campaign=arg("utm_campaign"),
            referrer=clean_line(referrer or "")[:500] or None,
        )

    def dimensions(self) -> dict:
        """This touch as the funnel breaks families down (FamilyProgress's columns)."""
        is_referral = self.referral_code is not None or self.kind == SourceKind.REFERRAL
        return {
            "channel": "referral" if is_referral else self.kind.value,
            "form": self.ref if self.kind == SourceKind.FORM else None,
            "campaign": self.ref if self.kind == SourceKind.CAMPAIGN else None,
            "utm_source": self.utm_source or "",
            "utm_medium": self.utm_medium or "",
            "utm_campaign": self.utm_campaign or "",
            "referrer": referrer_family(self.referrer),
        }


@dataclass
class StudentDetails:
    name: str
    grade: str | None = None
    birth_year: int | None = None
    school: str | None = None


@dataclass
class ContactDetails:
    parent_name: str
    email: str | None = None
    wechat_id: str | None = None
    consent_text: str | None = None
    students: list[StudentDetails] = field(default_factory=list)
    locale: str | None = None  # the language of the page they used


def normalise_phone(institution, raw: str) -> str:
    number = e164(raw, institution.country)
    if number is None:
        raise ServiceError(INVALID_PHONE, field="phone", code="invalid_phone")
    return number


def parent_page_url(institution, contact: Contact, then: str | None = None) -> str:
    """A link that opens the family's own page for PARENT_LINK_MAX_AGE; put in every
    message to a parent, so any message is a way back to their page. With `then` (a path
    on this site, such as a group's invitation), it signs the family in and goes there."""
    token = tokens.sign("parent-page", {"i": institution.id, "c": contact.id})
    extra = {"next": then} if then else {}
    return external_url("portal.open_link", institution_slug=institution.slug, token=token, **extra)


def contact_from_parent_link(institution, token: str) -> Contact:
    """The contact a parent-page link was made for; ServiceError if it is expired, forged,
    of another institution, or for a family that no longer exists (merged away)."""
    data = tokens.load("parent-page", token, current_app.config["PARENT_LINK_MAX_AGE"])
    contact = db.session.get(Contact, data.get("c")) if data.get("i") == institution.id else None
    if contact is None or contact.institution_id != institution.id:
        raise ServiceError(tokens.LINK_INVALID, code="link_invalid")
    return contact


def find_or_create_contact(
    institution, *, phone: str, details: ContactDetails, touch: Touch, actor=None
) -> tuple[Contact, bool]:
    """The contact with this phone (in any format) in the institution, created if new, with
    the new details merged in and the touch recorded. Returns (contact, created)."""
    number = normalise_phone(institution, phone)
    contact = contact_by_phone(institution, number)
    if contact is None:
        contact = _create_contact(institution, number, details, touch, actor)
        if contact is not None:
            return contact, True
        contact = contact_by_phone(institution, number)  # made by a concurrent request
    _merge_details(contact, details)
    record_touch(contact, touch, actor)
    db.session.flush()  # a new child's id, for what the caller does next
    return contact, False


def _create_contact(
    institution, number: str, details: ContactDetails, touch: Touch, actor
) -> Contact | None:
    """A new family's contact with its children and this first touch, written, with their
    ids (its timeline rows pending); None if a concurrent request for the same number made
    it first."""
    values = {
        "institution_id": institution.id,
        "phone": number,
        "staff_edited": [],
        **_details_of_a_new_contact(details),
    }
    if db.session.get_bind().dialect.name == "postgresql":
        contact = _insert_family(values, _named_children(details.students), touch)
        if contact is None:
            return None
    else:
        contact = db.insert_unless_exists(Contact, values, ["institution_id", "phone"])
        if contact is None:
            return None
        set_committed_value(contact, "students", [])
        _add_students(contact, details.students)
        _touch_row(contact, touch)
        db.session.flush()
    add_event(contact, EventKind.CREATED, {"source": touch.kind.value}, actor)
    _touch_event(contact, touch, actor)
    _start_progress(contact, touch)
    return contact


# A new family in one statement on PostgreSQL: the contact (unless its number is taken),
# its first touch, which the contact names (the touch's id is drawn first, and the
# foreign keys are checked at the end of the statement), and its children, whose ids are
# drawn by their place in the list. One INSERT each, and an UPDATE to name the touch,
# cost a new family's request four round trips and a flush more.
_NEW_FAMILY = text(
    """
    WITH touch AS MATERIALIZED (
        SELECT nextval(pg_get_serial_sequence('contact_touches', 'id')) AS id
    ), child_ids AS MATERIALIZED (
        SELECT n, nextval(pg_get_serial_sequence('students', 'id')) AS id
        FROM generate_series(1, cardinality(CAST(:names AS varchar[]))) AS n
    ), contact AS (
        INSERT INTO contacts (institution_id, phone, parent_name, email, wechat_id, notes,
            consent_text, consent_at, locale, owner_id, referral_code, staff_edited,
            created_at, updated_at, first_touch_id, latest_touch_id)
        SELECT :institution_id, :phone, :parent_name, :email, :wechat_id, NULL,
            :consent_text, :consent_at, :locale, NULL, :referral_code, CAST('[]' AS json),
            :now, :now, touch.id, touch.id
        FROM touch
        ON CONFLICT (institution_id, phone) DO NOTHING
        RETURNING id
    ), first_touch AS (
        INSERT INTO contact_touches (id, institution_id, contact_id, kind, ref,
            referral_code, utm_source, utm_medium, utm_campaign, referrer, created_at)
        SELECT touch.id, :institution_id, contact.id, :kind, :touch_ref, :touch_referral_code,
            :touch_utm_source, :touch_utm_medium, :touch_utm_campaign, :touch_referrer, :now
        FROM touch, contact
        RETURNING id
    ), children AS (
        INSERT INTO students (id, institution_id, contact_id, name, grade, birth_year,
            school, created_at)
        SELECT child_ids.id, :institution_id, contact.id, child.name, child.grade,
            child.birth_year, child.school, :now
        FROM contact, unnest(CAST(:names AS varchar[]), CAST(:grades AS varchar[]),
            CAST(:birth_years AS integer[]), CAST(:schools AS varchar[]))
            WITH ORDINALITY AS child(name, grade, birth_year, school, n)
            JOIN child_ids ON child_ids.n = child.n
    )
    SELECT contact.id, first_touch.id, ARRAY(SELECT id FROM child_ids ORDER BY n)
    FROM contact, first_touch
    """
).bindparams(bindparam("now", type_=UTCDateTime()), bindparam("consent_at", type_=UTCDateTime()))

_TOUCH_FIELDS = (
    "ref",
    "referral_code",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "referrer",
)
_CHILD_FIELDS = ("name", "grade", "birth_year", "school")


def _insert_family(values: dict, children: list[dict], touch: Touch) -> Contact | None:
    """`_NEW_FAMILY`: the contact of `values` (its staff edits none yet), its `children`
    (`_named_children`) and its first touch, in the session as they were written; None if
    the number is taken."""
    now = utcnow()
    contact_values = {
        **{name: None for name in MERGEABLE_FIELDS},
        "notes": None,
        "consent_text": None,
        "consent_at": None,
        "locale": None,
        "owner_id": None,
        **values,
        "referral_code": new_referral_code(),
        "created_at": now,
        "updated_at": now,
    }
    touch_values = {name: getattr(touch, name) for name in _TOUCH_FIELDS}
    row = db.session.execute(
        _NEW_FAMILY,
        {
            **{key: value for key, value in contact_values.items() if key != "staff_edited"},
            "now": now,
            "kind": touch.kind.value,
            **{f"touch_{name}": value for name, value in touch_values.items()},
            **{f"{name}s": [child[name] for child in children] for name in _CHILD_FIELDS},
        },
    ).one_or_none()
    if row is None:
        return None
    contact_id, touch_id, student_ids = row  # (a WITH's INSERT runs unread: children)
    institution_id = values["institution_id"]
    first_touch = db.adopt(
        ContactTouch,
        {
            "id": touch_id,
            "institution_id": institution_id,
            "contact_id": contact_id,
            "kind": touch.kind,
            **touch_values,
            "created_at": now,
        },
    )
    contact = db.adopt(
        Contact,
        {
            **contact_values,
            "id": contact_id,
            "first_touch_id": touch_id,
            "latest_touch_id": touch_id,
        },
    )
    students = [
        db.adopt(
            Student,
            {
                "id": student_id,
                "institution_id": institution_id,
                "contact_id": contact_id,
                "created_at": now,
                **child,
            },
        )
        for student_id, child in zip(student_ids, children, strict=True)
    ]
    for student in students:
        set_committed_value(student, "contact", contact)
    set_committed_value(contact, "students", students)
    set_committed_value(contact, "first_touch", first_touch)
    set_committed_value(contact, "latest_touch", first_touch)
    return contact


def _named_children(students: list[StudentDetails]) -> list[dict]:
    """The children a family names (those with a name), as their columns."""
    return [
        {
            "name": child.name.strip(),
            "grade": child.grade,
            "birth_year": child.birth_year,
            "school": child.school,
        }
        for child in students
        if child.name and child.name.strip()
    ]


def find_family(
    institution, details: FamilyDetails, touch: Touch, actor=None
) -> tuple[Contact, Student]:
    """The family (found by phone, or created) and the child named in `details`, who is
    added to the family if new: what every public action that names a child starts with
    (a trial registration, a group-buy join, a purchase)."""
    contact, _created = find_or_create_contact(
        institution,
        phone=details.phone,
        details=ContactDetails(
            parent_name=details.parent_name,
            email=details.email,
            consent_text=details.consent_text,
            students=[StudentDetails(details.student_name, details.student_grade)],
            locale=details.locale,
        ),
        touch=touch,
        actor=actor,
    )
    wanted = details.student_name.strip().casefold()
    student = next(s for s in contact.students if s.name.strip().casefold() == wanted)
    return contact, student


def _details_of_a_new_contact(details: ContactDetails) -> dict:
    values = {"parent_name": details.parent_name.strip()}
    for name in MERGEABLE_FIELDS:
        value = getattr(details, name)
        value = value.strip() if isinstance(value, str) else value
        if value:
            values[name] = value
    if details.consent_text:
        values.update(consent_text=details.consent_text, consent_at=utcnow())
    if details.locale:
        values["locale"] = details.locale
    return values


def _merge_details(contact: Contact, details: ContactDetails) -> None:
    for name in MERGEABLE_FIELDS:
        value = getattr(details, name)
        value = value.strip() if isinstance(value, str) else value
        if value and name not in (contact.staff_edited or []):
            setattr(contact, name, value)
    if details.consent_text:
        contact.consent_text = details.consent_text
        contact.consent_at = utcnow()
    if details.locale:
        contact.locale = details.locale
    _add_students(contact, details.students)


def _add_students(contact: Contact, students: list[StudentDetails]) -> None:
    known = {student.name.strip().lower(): student for student in contact.students}
    for incoming in _named_children(students):
        student = known.get(incoming["name"].lower())
        if student is None:
            contact.students.append(Student(institution_id=contact.institution_id, **incoming))
        else:
            student.grade = incoming["grade"] or student.grade
            student.birth_year = incoming["birth_year"] or student.birth_year
            student.school = incoming["school"] or student.school


def record_touch(contact: Contact, touch: Touch, actor=None) -> ContactTouch:
    row = _touch_row(contact, touch)
    _touch_event(contact, touch, actor)
    return row


def _touch_row(contact: Contact, touch: Touch) -> ContactTouch:
    row = ContactTouch(
        institution_id=contact.institution_id,
        contact_id=contact.id,
        kind=touch.kind,
        **{name: getattr(touch, name) for name in _TOUCH_FIELDS},
    )
    db.session.add(row)
    if contact.first_touch_id is None:
        contact.first_touch = row
    contact.latest_touch = row
    return row


def _touch_event(contact: Contact, touch: Touch, actor) -> ContactEvent:
    return add_event(
        contact,
        EventKind.TOUCH,
        {"kind": touch.kind.value, "ref": touch.ref, "utm_source": touch.utm_source},
        actor,
    )


def add_event(
    contact: Contact,
    kind: EventKind,
    data: dict | None = None,
    actor=None,
    at: datetime | None = None,
) -> ContactEvent:
    event = ContactEvent(
        institution_id=contact.institution_id,
        contact_id=contact.id,
        kind=kind,
        data=data or {},
        actor_id=getattr(actor, "id", None),
        created_at=at or utcnow(),
    )
    db.session.add(event)
    return event


_NEW_PROGRESS = "cohort_new_progress"  # session.info: the rows of families new in it


def _start_progress(contact: Contact, touch: Touch) -> None:
    """The funnel's row of a family seen for the first time, written just before the
    transaction commits (`_write_new_progress`) with every stage it reached meanwhile: a
    family's first visit writes it once rather than once and again at each stage."""
    db.session.info.setdefault(_NEW_PROGRESS, {})[contact.id] = FamilyProgress(
        institution_id=contact.institution_id,
        contact_id=contact.id,
        first_seen_at=contact.created_at,
        rank=0,
        **touch.dimensions(),
    )


@event.listens_for(Session, "before_commit")
def _write_new_progress(session: Session) -> None:
    new = session.info.pop(_NEW_PROGRESS, None)
    if new:
        session.add_all(new.values())


@event.listens_for(Session, "after_soft_rollback")
def _drop_new_progress(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_NEW_PROGRESS, None)


def record_progress(
    contact: Contact, *, stage: int = 0, lead_id: int | None = None, owner_id: int | None = None
) -> None:
    """The family reached funnel stage number `stage` now (1 lead, 2 contacted, 3 trial
    booked, 4 trial attended, 5 enrolled: each stage before it counts as reached now too,
    unless it was earlier); with `lead_id`, its lead `lead_id` is owned by `owner_id`, which
    is the family's owner in the funnel if that lead is its newest. A family new in this
    transaction has its row changed before it is written; any other in one UPDATE,
    whatever changes (see FamilyProgress)."""
    now = utcnow()
    new = db.session.info.get(_NEW_PROGRESS, {}).get(contact.id)
    if new is not None:
        for column in PROGRESS_STAGES[:stage]:
            if getattr(new, column) is None or getattr(new, column) > now:
                setattr(new, column, now)
        new.rank = max(new.rank, stage)
        if lead_id is not None and (new.lead_id is None or new.lead_id <= lead_id):
            new.lead_id, new.owner_id = lead_id, owner_id
        return
    progress = FamilyProgress.__table__.c
    at = bindparam("now", now, type_=progress.lead_at.type)
    values: dict = {}
    for column in PROGRESS_STAGES[:stage]:
        earlier = or_(progress[column].is_(None), progress[column] > at)
        values[column] = case((earlier, at), else_=progress[column])
    if stage:
        values["rank"] = case((progress.rank < stage, stage), else_=progress.rank)
    if lead_id is not None:
        newest = or_(progress.lead_id.is_(None), progress.lead_id <= lead_id)
        values["lead_id"] = case((newest, lead_id), else_=progress.lead_id)
        values["owner_id"] = case((newest, owner_id), else_=progress.owner_id)
    if values:
        db.session.execute(
            update(FamilyProgress.__table__)
            .where(
                progress.institution_id == contact.institution_id,
                progress.contact_id == contact.id,
            )
            .values(values)
        )


def _fold_progress(survivor: Contact, duplicate: Contact, duplicate_touch_won: bool) -> None:
    """The survivor's funnel row after a merge: the stages either family reached, each at
    the earlier time, the owner of the newer lead, and where it came from by the first
    touch the survivor keeps; the duplicate's row goes. (Every family has its row: written
    with it, or by the migration that brought them for the families before.)"""
    kept = db.session.get(FamilyProgress, survivor.id)
    gone = db.session.get(FamilyProgress, duplicate.id)
    for column in PROGRESS_STAGES:
        times = [t for t in (getattr(kept, column), getattr(gone, column)) if t is not None]
        setattr(kept, column, min(times, default=None))
    kept.rank = max(kept.rank, gone.rank)
    if gone.lead_id is not None and (kept.lead_id is None or gone.lead_id > kept.lead_id):
        kept.lead_id, kept.owner_id = gone.lead_id, gone.owner_id
    if duplicate_touch_won:
        for column in PROGRESS_SOURCE:
            setattr(kept, column, getattr(gone, column))
    db.session.delete(gone)


def update_contact(contact: Contact, actor, *, phone: str, institution, **fields) -> None:
    """A staff edit. Edited fields are remembered, so public actions never overwrite them."""
    number = normalise_phone(institution, phone)
    if number != contact.phone:
        other = contact_by_phone(institution, number)
        if other is not None:
            raise ServiceError(
                _l("Another contact has this phone number. Merge the two instead."),
                field="phone",
                code="phone_taken",
            )
        fields["phone"] = number
    changes = {}
    for name, value in fields.items():
        value = value.strip() if isinstance(value, str) else value
        value = value or None if name != "parent_name" else value
        if getattr(contact, name) != value:
            changes[name] = value
            setattr(contact, name, value)
    if changes:
        contact.staff_edited = sorted(set(contact.staff_edited or []) | set(changes))
        add_event(contact, EventKind.UPDATED, {"fields": sorted(changes)}, actor)
    db.session.flush()


def add_note(contact: Contact, actor, text: str) -> None:
    add_event(contact, EventKind.NOTE, {"text": text.strip()}, actor)
    db.session.flush()


def add_student(contact: Contact, details: StudentDetails) -> Student:
    student = Student(
        institution_id=contact.institution_id,
        name=details.name.strip(),
        grade=details.grade,
        birth_year=details.birth_year,
        school=details.school,
    )
    contact.students.append(student)
    db.session.flush()
    return student


def set_tags(contact: Contact, names: list[str]) -> None:
    wanted = {name.strip()[:40] for name in names if name.strip()}
    existing = (
        {
            tag.name: tag
            for tag in db.session.scalars(
                select(Tag).where(
                    Tag.institution_id == contact.institution_id, Tag.name.in_(wanted)
                )
            )
        }
        if wanted
        else {}
    )
    contact.tags = [
        existing.get(name) or Tag(institution_id=contact.institution_id, name=name)
        for name in sorted(wanted)
    ]
    db.session.flush()


def merge_contacts(survivor: Contact, duplicate: Contact, actor) -> None:
    """Fold `duplicate` into `survivor`: every row that points at the duplicate (students,
    touches, timeline, and whatever later domains add: leads, enrolments, orders) is
    repointed, empty fields are filled, tags joined; then the duplicate is deleted."""
    if survivor.id == duplicate.id or survivor.institution_id != duplicate.institution_id:
        raise ServiceError(_l("Choose two different contacts."), code="same_contact")
    snapshot = {
        "parent_name": duplicate.parent_name,
        "phone": duplicate.phone,
        "email": duplicate.email,
    }
    for name in ("email", "wechat_id", "consent_text", "consent_at", "owner_id"):
        if getattr(survivor, name) is None and getattr(duplicate, name) is not None:
            setattr(survivor, name, getattr(duplicate, name))
    if duplicate.notes:
        survivor.notes = "\n\n".join(filter(None, [survivor.notes, duplicate.notes]))
    set_tags(survivor, [tag.name for tag in (*survivor.tags, *duplicate.tags)])
    duplicate_touch_won = duplicate.first_touch is not None and (
        survivor.first_touch is None
        or duplicate.first_touch.created_at < survivor.first_touch.created_at
    )
    if duplicate_touch_won:
        survivor.first_touch = duplicate.first_touch
    duplicate.first_touch = duplicate.latest_touch = None
    _fold_progress(survivor, duplicate, duplicate_touch_won)
    db.session.flush()
    try:
        with db.session.begin_nested():
            _repoint_references(duplicate.id, survivor.id)
    except IntegrityError as error:  # a row a family may hold once, held by both
        raise ServiceError(
            _l(
                "Both families have something a family can hold only once (an open lead, "
                "a place in the same group or team). Close or remove one of them, then "
                "merge."
            ),
            code="merge_conflict",
        ) from error
    db.session.expire(survivor, ["students"])
    db.session.delete(duplicate)
    add_event(survivor, EventKind.MERGED, snapshot, actor)
    db.session.flush()


def _repoint_references(old_id: int, new_id: int) -> None:
    contacts = Contact.__table__
    for table in Base.metadata.sorted_tables:
        if table is contacts:
            continue
        for fk in table.foreign_keys:
            # Association rows (contact_tags) are keyed by the contact: the survivor already
            # has their union, and they go with the duplicate.
            if fk.column is contacts.c.id and not fk.parent.primary_key:
                db.session.execute(
                    update(table).where(fk.parent == old_id).values({fk.parent.name: new_id})
                )


# --- CSV import ------------------------------------------------------------------------------

IMPORT_COLUMNS = (
    "parent_name",
    "phone",
    "email",
    "wechat_id",
    "student_name",
    "student_grade",
    "tags",
)
IMPORT_MAX_ROWS = 5000


@dataclass
class ImportRow:
    line: int
    values: dict
    phone: str | None = None
    errors: list = field(default_factory=list)
    action: str = "new"  # new | update | repeat (the same phone earlier in the file)


@dataclass
class ImportPreview:
    rows: list[ImportRow]
    problem: str | None = None

    @property
    def error_count(self) -> int:
        return sum(1 for row in self.rows if row.errors)

    @property
    def is_valid(self) -> bool:
        return self.problem is None and bool(self.rows) and self.error_count == 0

    def count(self, action: str) -> int:
        return sum(1 for row in self.rows if row.action == action and not row.errors)


def preview_import(institution, data: bytes) -> ImportPreview:
    """Check every row of a contacts CSV without writing anything."""
    from email_validator import EmailNotValidError, validate_email

    from app.csvfile import read_csv

    try:
        header, raw_rows = read_csv(data, IMPORT_MAX_ROWS)
    except ValueError as exc:
        if str(exc) == "too_many_rows":
            return ImportPreview([], _l("A file can hold at most %(n)s rows.", n=IMPORT_MAX_ROWS))
        return ImportPreview([], _l("The file is not readable text. Save it as CSV (UTF-8)."))
    if "parent_name" not in header or "phone" not in header:
        return ImportPreview(
            [], _l("The first row must name the columns, including parent_name and phone.")
        )
    seen: set[str] = set()
    rows = []
    for line, values in enumerate(raw_rows, start=2):
        row = ImportRow(line, values)
        name = values.get("parent_name", "")
        if not name:
            row.errors.append(_l("parent_name is empty"))
        elif len(name) > 80:
            row.errors.append(_l("parent_name is longer than %(n)s characters", n=80))
        row.phone = e164(values.get("phone", ""), institution.country)
        if row.phone is None:
            row.errors.append(_l("phone is not a valid number"))
        if values.get("email"):
            try:
                validate_email(values["email"], check_deliverability=False)
            except EmailNotValidError:
                row.errors.append(_l("email is not a valid address"))
        for column, size in (
            ("wechat_id", 64),
            ("student_name", 80),
            ("student_grade", 40),
            ("tags", 300),
        ):
            if len(values.get(column, "")) > size:
                row.errors.append(
                    _l("%(column)s is longer than %(n)s characters", column=column, n=size)
                )
        if row.phone in seen:
            row.action = "repeat"
        elif row.phone and contact_by_phone(institution, row.phone) is not None:
            row.action = "update"
        if row.phone:
            seen.add(row.phone)
        rows.append(row)
    if not rows:
        return ImportPreview([], _l("The file has no rows below its header."))
    return ImportPreview(rows)


def import_contacts(institution, actor, data: bytes) -> ImportPreview:
    """Apply a contacts CSV: all rows or, if any row is wrong, none (nothing is written)."""
    preview = preview_import(institution, data)
    if not preview.is_valid:
        raise ServiceError(
            preview.problem
            or _l("Correct the rows marked in the preview first; nothing was imported."),
            code="invalid_import",
        )
    for row in preview.rows:
        values = row.values
        students = (
            [StudentDetails(values["student_name"], values.get("student_grade") or None)]
            if values.get("student_name")
            else []
        )
        contact, _created = find_or_create_contact(
            institution,
            phone=row.phone,
            details=ContactDetails(
                parent_name=values["parent_name"],
                email=values.get("email") or None,
                wechat_id=values.get("wechat_id") or None,
                students=students,
            ),
            touch=Touch(SourceKind.IMPORT),
            actor=actor,
        )
        if values.get("tags"):
            set_tags(contact, [*(tag.name for tag in contact.tags), *values["tags"].split(",")])
    return preview
