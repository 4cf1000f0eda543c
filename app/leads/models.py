from __future__ import annotations

import enum
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import fields as dataclass_fields
from datetime import datetime
from types import MappingProxyType

from flask_babel import lazy_gettext as _l
from sqlalchemy import (
    JSON,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.accounts.models import User
from app.contacts.models import Contact
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow


def new_form_code() -> str:
    return secrets.token_urlsafe(8)


class FieldKind(enum.StrEnum):
    SHORT_TEXT = "short_text"
    LONG_TEXT = "long_text"
    SINGLE_CHOICE = "single_choice"
    MULTI_CHOICE = "multi_choice"
    NUMBER = "number"
    DATE = "date"


# Built-in fields: what they are called, what kind of input they take. parent_name and
# phone are always on a form: they are how a family is found again.
BUILTIN_FIELDS = {
    "parent_name": (_l("Parent's name"), FieldKind.SHORT_TEXT),
    "phone": (_l("Phone"), FieldKind.SHORT_TEXT),
    "child_name": (_l("Child's name"), FieldKind.SHORT_TEXT),
    "child_grade": (_l("Child's grade"), FieldKind.SHORT_TEXT),
    "subject": (_l("Subject of interest"), FieldKind.SHORT_TEXT),
    "preferred_time": (_l("Preferred time"), FieldKind.SHORT_TEXT),
    "campus": (_l("Campus"), FieldKind.SHORT_TEXT),
}
ALWAYS_ON = ("parent_name", "phone")
FIELD_KIND_LABELS = {
    FieldKind.SHORT_TEXT: _l("Short text"),
    FieldKind.LONG_TEXT: _l("Long text"),
    FieldKind.SINGLE_CHOICE: _l("Single choice"),
    FieldKind.MULTI_CHOICE: _l("Multiple choice"),
    FieldKind.NUMBER: _l("Number"),
    FieldKind.DATE: _l("Date"),
}
MAX_ANSWER = {FieldKind.SHORT_TEXT: 100, FieldKind.LONG_TEXT: 1000}


class LeadForm(TenantScoped, Base):
    """A lead-capture form with a public page at /<institution>/f/<code>.

    `fields` is the ordered list of questions: dicts with key, kind, label, help,
    required and (for choices) choices. Built-in keys are those of BUILTIN_FIELDS;
    custom ones are "custom_<n>".
    """

    __tablename__ = "lead_forms"
    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_form_code)
    title: Mapped[str] = mapped_column(String(120))
    intro: Mapped[str | None] = mapped_column(Text)
    # The cover picture, small and in the database like the institution's logo.
    cover: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    cover_content_type: Mapped[str | None] = mapped_column(String(32))
    cover_updated_at: Mapped[datetime | None]
    fields: Mapped[list] = mapped_column(JSON, default=list)
    consent_text: Mapped[str | None] = mapped_column(Text)
    thank_you_message: Mapped[str | None] = mapped_column(Text)
    redirect_url: Mapped[str | None] = mapped_column(String(500))
    is_open: Mapped[bool] = mapped_column(default=True)
    closes_at: Mapped[datetime | None]
    submission_cap: Mapped[int | None]
    view_count: Mapped[int] = mapped_column(default=0)
    submission_count: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    def accepts_submissions(self, now: datetime) -> bool:
        return _closed_reason(self, now) is None

    def closed_reason(self, now: datetime) -> str | None:
        """Why the form takes no submission now (a code), or None if it is open."""
        return _closed_reason(self, now)

    @property
    def has_cover(self) -> bool:
        return self.cover_updated_at is not None

    @property
    def conversion_rate(self) -> float | None:
        return self.submission_count / self.view_count if self.view_count else None


def _closed_reason(form: LeadForm | FormTerms, now: datetime) -> str | None:
    if not form.is_open:
        return "closed"
    if form.closes_at is not None and now >= form.closes_at:
        return "past_date"
    if form.submission_cap is not None and form.submission_count >= form.submission_cap:
        return "full"
    return None


@dataclass(frozen=True)
class FormTerms:
    """What deciding a submission needs of a form, as plain values: kept in each web
    process's memory while the form's page version stands (app.leads.services
    .form_terms), so a crowd's submissions do not read the form's row. Its submission
    count is as it was read: a form that reaches its cap changes its version, and the
    database's conditional count refuses one past the cap meanwhile."""

    id: int
    institution_id: int
    code: str
    title: str
    fields: tuple[Mapping, ...]
    consent_text: str | None
    redirect_url: str | None
    is_open: bool
    closes_at: datetime | None
    submission_cap: int | None
    submission_count: int

    @classmethod
    def of(cls, form: LeadForm) -> FormTerms:
        values = {field.name: getattr(form, field.name) for field in dataclass_fields(cls)}
        # Shared by a process's threads: the questions as read-only copies.
        values["fields"] = tuple(
            MappingProxyType({k: tuple(v) if isinstance(v, list) else v for k, v in f.items()})
            for f in form.fields
        )
        return cls(**values)

    def accepts_submissions(self, now: datetime) -> bool:
        return _closed_reason(self, now) is None

    def closed_reason(self, now: datetime) -> str | None:
        return _closed_reason(self, now)


class FormSourceStat(TenantScoped, Base):
    """Views and submissions of a form per traffic source (utm_source, or "direct")."""

    __tablename__ = "form_source_stats"
    __table_args__ = (UniqueConstraint("form_id", "source"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = parent_id("lead_forms", ondelete="CASCADE", index=True)
    source: Mapped[str] = mapped_column(String(100))
    views: Mapped[int] = mapped_column(default=0)
    submissions: Mapped[int] = mapped_column(default=0)


class FormSubmission(TenantScoped, Base):
    """One accepted submission, with the raw answers as the parent gave them."""

    __tablename__ = "form_submissions"
    __table_args__ = (Index("ix_form_submissions_form_phone", "form_id", "phone", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    form_id: Mapped[int] = parent_id("lead_forms", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    lead_id: Mapped[int | None] = parent_id("leads")
    phone: Mapped[str] = mapped_column(String(20))
    answers: Mapped[dict] = mapped_column(JSON, default=dict)
    source: Mapped[str] = mapped_column(String(100))
    referral_code: Mapped[str | None] = mapped_column(String(64))
    referrer: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    form: Mapped[LeadForm] = relationship(foreign_keys=[form_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])


class Stage(enum.StrEnum):
    NEW = "new"
    CONTACTED = "contacted"
    TRIAL_BOOKED = "trial_booked"
    TRIAL_ATTENDED = "trial_attended"
    ENROLLED = "enrolled"
    LOST = "lost"

    @property
    def label(self):
        return STAGE_LABELS[self]

    @property
    def is_closed(self) -> bool:
        return self in (Stage.ENROLLED, Stage.LOST)


# The funnel's number of each stage a lead goes to (contacts.record_progress); `lost` is
# none: a lost family keeps the stages it reached.
FUNNEL_STAGES = {
    Stage.NEW: 1,
    Stage.CONTACTED: 2,
    Stage.TRIAL_BOOKED: 3,
    Stage.TRIAL_ATTENDED: 4,
    Stage.ENROLLED: 5,
}

# The sources our own code writes on a lead (campaigns' and courses' `ensure_lead`, a
# form's "direct" visit), in words; any other source is a link's utm_source.
SOURCE_WORDS = {
    "direct": _l("Direct"),
    "group_buy": _l("Group buy"),
    "flash_sale": _l("Flash sale"),
    "course": _l("Course page"),
}

STAGE_LABELS = {
    Stage.NEW: _l("New"),
    Stage.CONTACTED: _l("Contacted"),
    Stage.TRIAL_BOOKED: _l("Trial booked"),
    Stage.TRIAL_ATTENDED: _l("Trial attended"),
    Stage.ENROLLED: _l("Enrolled"),
    Stage.LOST: _l("Lost"),
}
OPEN_STAGES = (Stage.NEW, Stage.CONTACTED, Stage.TRIAL_BOOKED, Stage.TRIAL_ATTENDED)
# A family has one open lead at a time: the partial unique index's condition (and the
# conflict target of inserting one, app.leads.services.create_lead).
OPEN_LEAD_INDEX_WHERE = text("stage NOT IN ('enrolled', 'lost')")


class Lead(TenantScoped, Base):
    """A family in the pipeline. A contact has at most one open lead at a time."""

    __tablename__ = "leads"
    __table_args__ = (
        Index(
            "uq_leads_open_per_contact",
            "institution_id",
            "contact_id",
            unique=True,
            postgresql_where=OPEN_LEAD_INDEX_WHERE,
            sqlite_where=OPEN_LEAD_INDEX_WHERE,
        ),
        Index("ix_leads_pipeline", "institution_id", "stage", "owner_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    stage: Mapped[Stage] = mapped_column(str_enum(Stage), default=Stage.NEW)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    form_id: Mapped[int | None] = parent_id("lead_forms", index=True)
    source: Mapped[str | None] = mapped_column(String(100))  # the arrival's utm_source
    lost_reason: Mapped[str | None] = mapped_column(String(80))
    next_contact_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None]

    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])
    owner: Mapped[User | None] = relationship()
    form: Mapped[LeadForm | None] = relationship(foreign_keys=[form_id])

    @property
    def source_label(self) -> str:
        """Where the lead came from as staff read it: the form's title, else what brought
        the family (a campaign, a course) or the link's utm_source as the institution wrote
        it; never one of our own codes."""
        if self.form is not None:
            label = self.form.title
            if self.source and self.source != "direct":
                label = f"{label} · {SOURCE_WORDS.get(self.source, self.source)}"
            return label
        return str(SOURCE_WORDS.get(self.source or "", self.source or "–"))

    def is_overdue(self, now: datetime) -> bool:
        return (
            not self.stage.is_closed
            and self.next_contact_at is not None
            and self.next_contact_at < now
        )


class LostReason(TenantScoped, Base):
    """A reason a lead can be closed as lost; each institution keeps its own list."""

    __tablename__ = "lost_reasons"
    __table_args__ = (UniqueConstraint("institution_id", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    position: Mapped[int] = mapped_column(default=0)


class LeadAssignee(TenantScoped, Base):
    """A staff member in the automatic round-robin for new leads."""

    __tablename__ = "lead_assignees"
    __table_args__ = (UniqueConstraint("institution_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    last_assigned_at: Mapped[datetime | None]

    user: Mapped[User] = relationship()


DEFAULT_LOST_REASONS = (
    _l("Price"),
    _l("Schedule does not fit"),
    _l("Too far away"),
    _l("Chose another school"),
    _l("No response"),
)
