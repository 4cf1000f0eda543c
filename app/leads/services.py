"""Lead forms, submissions and the pipeline.

A submission is validated against the form's own questions, then finds or creates the
family's contact, opens a lead if the family has none, and tells the lead's owner (or the
institution's managers) by e-mail, all in the caller's one transaction.
"""

from __future__ import annotations

import logging
from contextlib import nullcontext
from datetime import date, datetime, timedelta
from functools import cache

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.exc import IntegrityError

from app import counters, pagecache
from app.accounts import queries as account_queries
from app.accounts.models import User
from app.contacts import services as contacts
from app.contacts.models import Contact, EventKind
from app.db import (
    after_commit,
    assign,
    created_in_this_transaction,
    lock_for_transaction,
    utcnow,
)
from app.errors import ServiceError
from app.extensions import db
from app.leads import queries
from app.leads.models import (
    ALWAYS_ON,
    BUILTIN_FIELDS,
    DEFAULT_LOST_REASONS,
    FUNNEL_STAGES,
    MAX_ANSWER,
    OPEN_LEAD_INDEX_WHERE,
    OPEN_STAGES,
    FieldKind,
    FormSourceStat,
    FormSubmission,
    FormTerms,
    Lead,
    LeadAssignee,
    LeadForm,
    LostReason,
    Stage,
)
from app.notifications.services import queue_email
from app.tenancy import institution_by_id
from app.text import clean_line, clean_text
from app.urls import external_url

log = logging.getLogger(__name__)
DOUBLE_SUBMIT_WINDOW = timedelta(minutes=10)
FORM_CLOSED = _l("This form is no longer taking answers.")
MAX_FIELDS = 30
MAX_CHOICES = 20


class SubmissionInvalid(ServiceError):
    """Answers that do not fit the form; `errors` maps field keys to messages."""

    code = "invalid_submission"

    def __init__(self, errors: dict):
        super().__init__(_l("Please correct the fields marked below."))
        self.errors = errors


# --- building forms --------------------------------------------------------------------------


def default_fields() -> list[dict]:
    return [
        {
            "key": "parent_name",
            "kind": FieldKind.SHORT_TEXT.value,
            "label": "",
            "help": "",
            "required": True,
        },
        {
            "key": "phone",
            "kind": FieldKind.SHORT_TEXT.value,
            "label": "",
            "help": "",
            "required": True,
        },
        {
            "key": "child_name",
            "kind": FieldKind.SHORT_TEXT.value,
            "label": "",
            "help": "",
            "required": False,
        },
        {
            "key": "child_grade",
            "kind": FieldKind.SHORT_TEXT.value,
            "label": "",
            "help": "",
            "required": False,
        },
    ]


def clean_fields(fields: list[dict]) -> list[dict]:
    """Check and normalise a form's questions; parent name and phone are always there and
    always required."""
    cleaned, keys = [], set()
    for raw in fields:
        key = raw["key"]
        if key in keys:
            continue
        keys.add(key)
        if key in BUILTIN_FIELDS:
            kind = BUILTIN_FIELDS[key][1]
        elif key.startswith("custom_"):
            kind = FieldKind(raw["kind"])
        else:
            raise ServiceError(_l("Unknown field."), code="unknown_field")
        label = (raw.get("label") or "").strip()
        if key.startswith("custom_") and not label:
            raise ServiceError(_l("Every custom question needs a label."), code="no_label")
        field = {
            "key": key,
            "kind": kind.value,
            "label": label[:120],
            "help": (raw.get("help") or "").strip()[:200],
            "required": bool(raw.get("required")) or key in ALWAYS_ON,
        }
        if kind in (FieldKind.SINGLE_CHOICE, FieldKind.MULTI_CHOICE):
            choices = [c.strip()[:100] for c in raw.get("choices", []) if c.strip()]
            if not 2 <= len(choices) <= MAX_CHOICES:
                raise ServiceError(
                    _l(
                        "A choice question needs 2 to %(n)s choices: %(label)s",
                        n=MAX_CHOICES,
                        label=label,
                    ),
                    code="choices",
                )
            field["choices"] = list(dict.fromkeys(choices))
        cleaned.append(field)
    for key in reversed(ALWAYS_ON):
        if key not in keys:
            cleaned.insert(
                0,
                {
                    "key": key,
                    "kind": FieldKind.SHORT_TEXT.value,
                    "label": "",
                    "help": "",
                    "required": True,
                },
            )
    if len(cleaned) > MAX_FIELDS:
        raise ServiceError(
            _l("A form can have at most %(n)s questions.", n=MAX_FIELDS), code="too_many_fields"
        )
    return cleaned


def save_form(institution, form: LeadForm | None, **values) -> LeadForm:
    """Create a form, or change one; fields are checked with clean_fields."""
    values["fields"] = clean_fields(values["fields"])
    if values.get("redirect_url") and not values["redirect_url"].startswith(
        ("https://", "http://")
    ):
        raise ServiceError(
            _l("The redirect must be a web address starting with https://."), field="redirect_url"
        )
    if form is None:
        form = LeadForm(institution_id=institution.id, view_count=0, submission_count=0)
        db.session.add(form)
    capped = form.submission_cap is None and values.get("submission_cap") is not None
    assign(form, values)
    db.session.flush()
    if capped:  # from now on each submission counts against the cap as it is made
        _recount_submissions(institution, [form.code], form.submission_cap)
    pagecache.changed(institution.id, "lead_form", form.code)
    return form


def _recount_submissions(institution, codes: list[str], cap: int | None = None) -> None:
    """Set the forms' submission counts from their submissions. Forms without a cap are
    counted this way only (by the view counters' write-back, seconds behind): a
    submission of them writes nothing to the form's row. A form with one counts each
    submission itself (`_count_submission`), so it is recounted only as it gets one."""
    submitted = (
        select(func.count())
        .select_from(FormSubmission)
        .where(FormSubmission.form_id == LeadForm.id)
        .scalar_subquery()
    )
    uncapped = LeadForm.submission_cap.is_(None) if cap is None else true()
    db.session.execute(
        update(LeadForm)
        .where(LeadForm.institution_id == institution.id, LeadForm.code.in_(codes), uncapped)
        .values(submission_count=submitted)
        .execution_options(synchronize_session="fetch")
    )


# --- public side -----------------------------------------------------------------------------


def _source_of(touch: contacts.Touch) -> str:
    return (touch.utm_source or "direct")[:100]


VIEWS = "lead_form_views"  # the app.counters kind of public form views


def view_of(form_code: str, touch: contacts.Touch) -> counters.Count:
    """What a view of a public form's page adds to: its total and its traffic source's,
    in Redis, so that a GET writes nothing to the database (`add_views` writes the sums
    back)."""
    return counters.Count(VIEWS, form_code, ("total", f"source:{_source_of(touch)}"))


@counters.writes_back(VIEWS)
def add_views(institution, counts: dict[str, dict[str, int]]) -> None:
    """Add counted views ({form code: {"total": n, "source:<utm>": n}}) to the forms'
    totals and their per-source figures."""
    for code, names in sorted(counts.items()):
        form_id = db.session.scalar(
            update(LeadForm)
            .where(LeadForm.institution_id == institution.id, LeadForm.code == code)
            .values(view_count=LeadForm.view_count + names.get("total", 0))
            .returning(LeadForm.id)
        )
        if form_id is None:  # no such form (a mistyped link was counted)
            continue
        for name, value in names.items():
            if name.startswith("source:"):
                _bump_stat(institution.id, form_id, name.removeprefix("source:"), "views", value)
            elif name.startswith("submitted:"):
                source = name.removeprefix("submitted:")
                _bump_stat(institution.id, form_id, source, "submissions", value)
    submitted = [
        code for code, names in counts.items() if any(n.startswith("submitted:") for n in names)
    ]
    if submitted:
        _recount_submissions(institution, sorted(submitted))
    db.session.flush()


def _bump_stat(institution_id: int, form_id: int, source: str, column: str, by: int = 1) -> None:
    stat_table = FormSourceStat.__table__
    bumped = db.session.execute(
        update(stat_table)
        .where(stat_table.c.form_id == form_id, stat_table.c.source == source)
        .values({column: stat_table.c[column] + by})
    ).rowcount
    if bumped:
        return
    try:
        with db.session.begin_nested():
            db.session.add(
                FormSourceStat(
                    institution_id=institution_id,
                    form_id=form_id,
                    source=source,
                    views=by if column == "views" else 0,
                    submissions=by if column == "submissions" else 0,
                )
            )
    except IntegrityError:  # another request created the row first
        _bump_stat(institution_id, form_id, source, column, by)


def validate_answers(form: FormTerms, raw: dict, consent_given: bool) -> dict:
    """The answers the form asks for, checked; SubmissionInvalid lists every problem."""
    answers, errors = {}, {}
    for field in form.fields:
        key, kind = field["key"], FieldKind(field["kind"])
        if kind == FieldKind.MULTI_CHOICE:
            value = [clean_line(v).strip() for v in raw.get(key, []) if v]
        elif kind == FieldKind.LONG_TEXT:
            value = clean_text(raw.get(key) or "").strip()
        else:
            value = clean_line(raw.get(key) or "").strip()
        if not value:
            if field["required"]:
                errors[key] = _l("This field is required.")
            continue
        if kind in (FieldKind.SHORT_TEXT, FieldKind.LONG_TEXT) and len(value) > MAX_ANSWER[kind]:
            errors[key] = _l("At most %(n)s characters.", n=MAX_ANSWER[kind])
        elif kind == FieldKind.SINGLE_CHOICE and value not in field["choices"]:
            errors[key] = _l("Choose one of the options.")
        elif kind == FieldKind.MULTI_CHOICE and not set(value) <= set(field["choices"]):
            errors[key] = _l("Choose from the options.")
        elif kind == FieldKind.NUMBER:
            try:
                number = float(value)
                if not -1e9 < number < 1e9 or len(value) > 20:
                    raise ValueError
            except ValueError:
                errors[key] = _l("Enter a number.")
        elif kind == FieldKind.DATE:
            try:
                date.fromisoformat(value)
            except ValueError:
                errors[key] = _l("Enter a date.")
        answers[key] = value
    if form.consent_text and not consent_given:
        errors["consent"] = _l("Please agree to continue.")
    if errors:
        raise SubmissionInvalid(errors)
    return answers


def form_terms(institution, code: str) -> FormTerms | None:
    """The form's terms for deciding a submission, kept in this process's memory while
    the form's page version stands (app.pagecache.kept_terms). None if there is no such
    form."""

    def read() -> FormTerms | None:
        form = queries.form_by_code(institution, code)
        return FormTerms.of(form) if form is not None else None

    return pagecache.kept_terms(institution.id, "lead_form", code, read)


def submit_form(
    institution,
    form: FormTerms,
    raw: dict,
    *,
    consent_given: bool,
    touch: contacts.Touch,
    now: datetime | None = None,
) -> FormSubmission:
    """Accept a submission of a public form; see the module docstring.

    Nothing locks the form while the submission is written: many families send the same
    form at once. What must not happen twice is serialised where it belongs: the same
    family sending the same form again (the same phone within DOUBLE_SUBMIT_WINDOW is the
    same submission, returned again with nothing new written) waits on a lock of that
    family and form only; and the form's counter, which holds its cap, is the last
    statement (`_count_submission`), so the form's row is locked for the moment before
    the commit.
    """
    now = now or utcnow()
    if form.institution_id != institution.id or not form.accepts_submissions(now):
        raise ServiceError(FORM_CLOSED, code="form_closed")
    try:
        answers = validate_answers(form, raw, consent_given)
    except SubmissionInvalid as invalid:
        _check_phone(institution, raw.get("phone"), invalid.errors)  # named at once too
        raise
    problems: dict = {}
    phone = _check_phone(institution, answers["phone"], problems)
    if problems:
        raise SubmissionInvalid(problems)
    lock_for_transaction(db.session(), f"lead-form:{form.id}:{phone}")
    earlier = _same_submission(form, phone, answers, now)
    if earlier is not None:
        return earlier

    students = (
        [contacts.StudentDetails(answers["child_name"], answers.get("child_grade"))]
        if answers.get("child_name")
        else []
    )
    contact, _created = contacts.find_or_create_contact(
        institution,
        phone=phone,
        touch=touch,
        details=contacts.ContactDetails(
            parent_name=answers["parent_name"],
            students=students,
            consent_text=form.consent_text if consent_given else None,
        ),
    )
    lead = ensure_lead(institution, contact, form=form, source=_source_of(touch))
    submission = FormSubmission(
        institution_id=institution.id,
        form_id=form.id,
        contact_id=contact.id,
        lead_id=lead.id,
        phone=phone,
        answers=answers,
        source=_source_of(touch),
        referral_code=touch.referral_code,
        referrer=touch.referrer,
        created_at=now,
    )
    db.session.add(submission)
    db.session.flush()
    _notify_new_submission(institution, form, lead, submission)
    submitted = counters.Count(VIEWS, form.code, (f"submitted:{_source_of(touch)}",))
    after_commit(db.session(), lambda: counters.bump(institution.id, submitted))
    _count_submission(form)
    return submission


def _check_phone(institution, typed, problems: dict) -> str | None:
    """The phone number typed, as E.164; None, with the problem added to `problems`, if it
    is not one (nothing is added for a number not typed: that is the answers' problem)."""
    typed = clean_line(typed if isinstance(typed, str) else "").strip()
    if not typed or "phone" in problems:
        return None
    try:
        return contacts.normalise_phone(institution, typed)
    except ServiceError as error:
        problems["phone"] = error.message
        return None


def _count_submission(form: FormTerms) -> None:
    """One more submission of a form with a cap, within it: the last statement of a
    submission, so the form's row is locked for the moment before the commit only. The
    cap is the row's (the terms' may be a moment old: staff lowering it are obeyed at
    once). A form without a cap is not touched (its count is kept by `add_views`)."""
    if not form.submission_cap:
        return
    counted = db.session.execute(
        update(LeadForm)
        # (a cap staff removed meanwhile compares as NULL: no row, so the form is closed
        # to this submission only, as its terms said it was capped)
        .where(LeadForm.id == form.id, LeadForm.submission_count < LeadForm.submission_cap)
        .values(submission_count=LeadForm.submission_count + 1)
        .returning(LeadForm.submission_count, LeadForm.submission_cap)
        .execution_options(synchronize_session=False)
    ).one_or_none()
    if counted is None:  # another family took the last place a moment ago
        raise ServiceError(FORM_CLOSED, code="form_closed")
    count, cap = counted
    if count >= cap:
        pagecache.changed(form.institution_id, "lead_form", form.code)  # now full


def _same_submission(
    form: FormTerms, phone: str, answers: dict, now: datetime
) -> FormSubmission | None:
    """The family's earlier submission of this form within the double-submit window that
    this one repeats (a second tap, a resent page), if any. One that names a child the
    earlier ones did not (a second child of the family) is new, not a repeat."""
    child = (answers.get("child_name") or "").casefold()
    recent = db.session.scalars(
        select(FormSubmission)
        .where(
            FormSubmission.form_id == form.id,
            FormSubmission.phone == phone,
            FormSubmission.created_at > now - DOUBLE_SUBMIT_WINDOW,
        )
        .order_by(FormSubmission.id.desc())
    )
    return next(
        (s for s in recent if not child or (s.answers.get("child_name") or "").casefold() == child),
        None,
    )


def _notify_new_submission(
    institution, form: FormTerms, lead: Lead, submission: FormSubmission
) -> None:
    recipients = [lead.owner] if lead.owner else account_queries.managers(institution)
    for user in recipients:
        queue_email(
            institution_id=institution.id,
            recipient=user.email,
            template="new_lead",
            context={
                "name": user.name,
                "form_title": form.title,
                "parent_name": lead.contact.parent_name,
                "phone": lead.contact.phone,
                "source": submission.source,
                "action_url": external_url(
                    "leads.lead_detail", institution_slug=institution.slug, lead_id=lead.id
                ),
            },
            locale=institution.locale,
            dedupe_key=f"new-lead:{submission.id}:{user.id}",
        )


# --- the pipeline ----------------------------------------------------------------------------


def open_lead(contact: Contact) -> Lead | None:
    return db.session.scalar(
        select(Lead).where(
            Lead.institution_id == contact.institution_id,
            Lead.contact_id == contact.id,
            Lead.stage.in_(OPEN_STAGES),
        )
    )


def ensure_lead(
    institution,
    contact: Contact,
    *,
    source: str | None,
    form: LeadForm | FormTerms | None = None,
    opened_at: Stage = Stage.NEW,
) -> Lead:
    """The family's open lead, or a new one if they have none: every public action (a form
    submission, a registration, a group-buy join) puts the family in the pipeline once. A
    new one is opened at `opened_at` (a trial registration's lead is booked at once);
    an existing one is left where it is, for the caller to `advance_lead`."""
    lead = None if created_in_this_transaction(contact) else open_lead(contact)
    return lead or create_lead(
        institution, contact, form=form, source=(source or "")[:100] or None, stage=opened_at
    )


def create_lead(
    institution,
    contact: Contact,
    *,
    form: LeadForm | FormTerms | None = None,
    source: str | None = None,
    actor=None,
    stage: Stage = Stage.NEW,
) -> Lead:
    """Open a lead for `contact`, owned by the contact's owner, else the next staff member
    in the round-robin, else nobody (managers are told instead). A lead opened further on
    than `new` is written there at once, with the timeline and funnel of a lead opened as
    new and moved (no UPDATE of the row just inserted)."""
    # A family new in this transaction has no lead that anything pending could bear on
    # (and nothing pending bears on the round-robin's rows), so the session's pending
    # rows, this family's new timeline rows on PostgreSQL, are not flushed here: they go
    # in one INSERT with the lead's and the enrolment's later (see courses.services.enrol).
    with db.session.no_autoflush if created_in_this_transaction(contact) else nullcontext():
        owner_id = contact.owner_id or _next_assignee_id(institution)
        lead = db.insert_unless_exists(
            Lead,
            {
                "institution_id": institution.id,
                "contact_id": contact.id,
                "stage": stage,
                "owner_id": owner_id,
                "form_id": form.id if form else None,
                "source": source,
            },
            ["institution_id", "contact_id"],
            where=OPEN_LEAD_INDEX_WHERE,
        )
    if lead is None:  # opened by a concurrent request for the same family
        return open_lead(contact)
    if contact.owner_id is None and owner_id is not None:
        contact.owner_id = owner_id
    contacts.add_event(contact, EventKind.LEAD, {"lead": lead.id, "to": Stage.NEW.value}, actor)
    contacts.record_progress(
        contact, stage=FUNNEL_STAGES[Stage.NEW], lead_id=lead.id, owner_id=owner_id
    )
    if stage != Stage.NEW:
        _record_stage(lead, Stage.NEW, stage, actor)
    return lead


def _next_assignee_id(institution) -> int | None:
    """Round-robin: the chosen staff member who was given a lead longest ago, moved to the
    back of the queue in the same statement. Rows that concurrent requests hold are
    skipped (each rush request takes the next one along); only when every one is held does
    this wait for one. On PostgreSQL the same round trip says whether the institution has
    a round-robin at all (it may have none), so a lead costs one statement either way."""
    turn = {"institution": institution.id, "now": utcnow()}
    if db.session.get_bind().dialect.name == "postgresql":
        user_id, has_round_robin = db.session.execute(_turn_or_none(), turn).one()
    else:  # SQLite has no UPDATE inside WITH
        user_id = db.session.scalar(_take_assignee(skip_locked=True), turn)
        has_round_robin = user_id is not None or db.session.scalar(_has_round_robin(), turn)
    if user_id is None and has_round_robin:  # every one of them is held by another request
        user_id = db.session.scalar(_take_assignee(skip_locked=False), turn)
    return user_id


# The round-robin's statements are built once (a new lead is on the way of every rush:
# building them took as long as running them), with the institution and the time as
# parameters.


@cache
def _take_assignee(skip_locked: bool):
    """UPDATE ... RETURNING of the staff member whose turn it is (see _next_assignee_id)."""
    turn = (
        select(LeadAssignee.id)
        .where(LeadAssignee.institution_id == bindparam("institution"))
        .order_by(LeadAssignee.last_assigned_at.asc().nulls_first(), LeadAssignee.id)
        .limit(1)
        .with_for_update(skip_locked=skip_locked)
        .scalar_subquery()
    )
    return (
        update(LeadAssignee)
        .where(LeadAssignee.id == turn)
        .values(last_assigned_at=bindparam("now"))
        .returning(LeadAssignee.user_id)
        .execution_options(synchronize_session=False)
    )


@cache
def _has_round_robin():
    return select(
        select(LeadAssignee.id)
        .where(LeadAssignee.institution_id == bindparam("institution"))
        .exists()
    )


@cache
def _turn_or_none():
    """PostgreSQL: (the user whose turn it is, or None; whether there is a round-robin)."""
    taken = select(_take_assignee(skip_locked=True).cte("taken").c.user_id).scalar_subquery()
    return select(taken, _has_round_robin().selected_columns[0])


def set_round_robin(institution, user_ids: list[int]) -> None:
    current = {
        a.user_id: a
        for a in db.session.scalars(
            select(LeadAssignee).where(LeadAssignee.institution_id == institution.id)
        )
    }
    for user_id, assignee in current.items():
        if user_id not in user_ids:
            db.session.delete(assignee)
    for user_id in user_ids:
        if user_id not in current:
            db.session.add(LeadAssignee(institution_id=institution.id, user_id=user_id))
    db.session.flush()


def move_lead(lead: Lead, stage: Stage, actor, lost_reason: str | None = None) -> None:
    """Move a lead to another stage, under a row lock. Staff may move an open lead to any
    stage (to correct a mistake too); `lost` needs one of the institution's reasons; an
    enrolled lead stays enrolled; a lost lead can be reopened as new."""
    db.session.flush()  # pending changes first: the refresh below would discard them
    db.session.refresh(lead, with_for_update=True)
    previous = lead.stage
    if stage == previous:
        return
    if previous == Stage.ENROLLED:
        raise ServiceError(_l("An enrolled family stays enrolled."), code="final")
    if previous == Stage.LOST and stage != Stage.NEW:
        raise ServiceError(_l("Reopen a lost lead as new first."), code="reopen_first")
    if stage == Stage.LOST:
        if lost_reason not in lost_reason_names(institution_by_id(lead.institution_id)):
            raise ServiceError(
                _l("Choose why the family was lost."), field="lost_reason", code="lost_reason"
            )
        lead.lost_reason = lost_reason
    elif previous == Stage.LOST:
        other = open_lead(lead.contact)
        if other is not None:
            raise ServiceError(_l("This family already has an open lead."), code="open_lead")
        lead.lost_reason = None
    _set_stage(lead, previous, stage, actor)
    db.session.flush()


def _set_stage(lead: Lead, previous: Stage, stage: Stage, actor) -> None:
    lead.stage = stage
    lead.closed_at = utcnow() if stage.is_closed else None
    _record_stage(lead, previous, stage, actor)


def _record_stage(lead: Lead, previous: Stage, stage: Stage, actor) -> None:
    """The lead's move on the family's timeline and in its funnel row."""
    contacts.add_event(
        lead.contact,
        EventKind.LEAD,
        {"lead": lead.id, "from": previous.value, "to": stage.value, "reason": lead.lost_reason},
        actor,
    )
    if stage in FUNNEL_STAGES:  # a lost lead keeps the stages it reached
        contacts.record_progress(lead.contact, stage=FUNNEL_STAGES[stage])


def advance_lead(
    contact: Contact, stage: Stage, actor=None, lead: Lead | None = None
) -> Lead | None:
    """Move the contact's open lead (`lead`, if the caller has it) forward to `stage` if
    it is behind (used when a family books or attends a trial, or enrols); never moves a
    lead backwards."""
    lead = lead or open_lead(contact)
    if lead is None or OPEN_STAGES.index(lead.stage) >= _rank(stage):
        return lead
    if created_in_this_transaction(lead):  # nobody else can be moving it
        _set_stage(lead, lead.stage, stage, actor)
    else:
        move_lead(lead, stage, actor)
    return lead


def _rank(stage: Stage) -> int:
    return len(OPEN_STAGES) if stage == Stage.ENROLLED else OPEN_STAGES.index(stage)


def assign_leads(leads: list[Lead], owner: User | None, actor) -> None:
    for lead in leads:
        if lead.owner_id != (owner.id if owner else None):
            lead.owner_id = owner.id if owner else None
            contacts.record_progress(lead.contact, lead_id=lead.id, owner_id=lead.owner_id)
            contacts.add_event(
                lead.contact,
                EventKind.LEAD,
                {"lead": lead.id, "owner": owner.name if owner else None},
                actor,
            )
    db.session.flush()


def add_follow_up(lead: Lead, actor, text: str, next_contact_at: datetime | None) -> None:
    """A follow-up note on the family's timeline, and when to contact them next."""
    contacts.add_event(
        lead.contact,
        EventKind.NOTE,
        {
            "text": text.strip(),
            "lead": lead.id,
            "next_contact_at": next_contact_at.isoformat() if next_contact_at else None,
        },
        actor,
    )
    lead.next_contact_at = next_contact_at
    if lead.stage == Stage.NEW:
        move_lead(lead, Stage.CONTACTED, actor)
    db.session.flush()


def lost_reason_names(institution) -> list[str]:
    """The institution's reasons a lead is lost, in their order; until it has saved its
    own, the default ones in its language (nothing is written to read them)."""
    names = list(
        db.session.scalars(
            select(LostReason.name)
            .where(LostReason.institution_id == institution.id)
            .order_by(LostReason.position, LostReason.id)
        )
    )
    if names:
        return names
    from flask_babel import force_locale

    with force_locale(institution.locale):
        return [str(name) for name in DEFAULT_LOST_REASONS]


def set_lost_reasons(institution, names: list[str]) -> None:
    wanted = list(dict.fromkeys(n.strip()[:80] for n in names if n.strip()))
    if not wanted:
        raise ServiceError(_l("Keep at least one reason."), field="reasons")
    existing = {
        r.name: r
        for r in db.session.scalars(
            select(LostReason).where(LostReason.institution_id == institution.id)
        )
    }
    for name, reason in existing.items():
        if name not in wanted:
            db.session.delete(reason)
    db.session.flush()
    for position, name in enumerate(wanted):
        reason = existing.get(name) or LostReason(institution_id=institution.id, name=name)
        reason.position = position
        db.session.add(reason)
    db.session.flush()
