from __future__ import annotations

import base64

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from wtforms import SelectChoice

from app.accounts import queries as account_queries
from app.accounts.models import MANAGERS
from app.campaigns import queries as campaign_queries
from app.campaigns.models import MEMBER_STATUS_LABELS, TEAM_STATUS_LABELS
from app.contacts import queries, services
from app.contacts.forms import (
    ContactForm,
    FilterForm,
    ImportForm,
    MergeForm,
    NoteForm,
    StudentForm,
)
from app.contacts.models import CAMPAIGN_EVENT_LABELS, SOURCE_LABELS, Contact, SourceKind
from app.courses import models as course_models
from app.courses import queries as course_queries
from app.csvfile import csv_response
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db
from app.forms import member_choices
from app.leads import queries as lead_queries
from app.leads.models import STAGE_LABELS, Stage
from app.loyalty import queries as loyalty_queries
from app.memberships import queries as vip_queries
from app.payments import queries as payment_queries
from app.payments.models import PAYMENT_STATUS_LABELS, PaymentStatus
from app.tenancy import current_institution, get_or_404, require_role, staff_blueprint
from app.web import list_page

staff = staff_blueprint("contacts", __name__)
BLUEPRINTS = [staff]
PER_PAGE = 50


def _member_choices(blank_label) -> list[SelectChoice]:
    return member_choices(account_queries.institution_members(current_institution()), blank_label)


def _filters() -> tuple[FilterForm, queries.ContactFilters]:
    institution = current_institution()
    form = FilterForm(request.args)
    form.owner.choices = _member_choices(_("Anyone"))
    form.tag.choices = [
        SelectChoice("", _("Any tag")),
        *(SelectChoice(name, name) for name in queries.tag_names(institution)),
    ]
    form.validate()  # bad dates or an over-long search are ignored, not an error page
    owner = request.args.get("owner", type=int)
    source = request.args.get("source", "")
    stage = request.args.get("stage", "")
    filters = queries.ContactFilters(
        q="" if form.q.errors else (form.q.data or ""),
        owner_id=owner,
        among=(
            lead_queries.contact_ids_in_stage(institution, Stage(stage))
            if stage in set(Stage)
            else None
        ),
        source=SourceKind(source) if source in set(SourceKind) else None,
        tag=request.args.get("tag", "")[:40],
        created_from=None if form.created_from.errors else form.created_from.data,
        created_to=None if form.created_to.errors else form.created_to.data,
    )
    return form, filters


@staff.get("/contacts")
def contact_list():
    form, filters = _filters()
    number, args = list_page()
    page = queries.page_of(
        queries.filtered_contacts(current_institution(), filters), number, PER_PAGE
    )
    return render_template(
        "contacts/contact_list.html",
        form=form,
        contacts=page.items,
        page=page,
        args=args,
        source_labels=SOURCE_LABELS,
    )


@staff.get("/contacts/export.csv")
@require_role(*MANAGERS)
def contact_export():
    _form, filters = _filters()
    contacts = db.session.scalars(queries.filtered_contacts(current_institution(), filters)).all()
    zone = current_institution().zone
    rows = (
        [
            c.parent_name,
            c.phone,
            c.email,
            c.wechat_id,
            c.student_names,
            ", ".join(t.name for t in c.tags),
            c.first_touch.kind.value if c.first_touch else "",
            c.first_touch.utm_source if c.first_touch else "",
            c.owner.name if c.owner else "",
            c.created_at.astimezone(zone).isoformat(),
        ]
        for c in contacts
    )
    header = [
        "parent_name",
        "phone",
        "email",
        "wechat_id",
        "students",
        "tags",
        "source",
        "utm_source",
        "owner",
        "created_at",
    ]
    return csv_response(f"contacts-{current_institution().slug}.csv", header, rows)


def _contact_form(contact: Contact | None = None) -> ContactForm:
    form = ContactForm(obj=contact)
    form.owner_id.choices = _member_choices(_l("Nobody"))
    if contact is not None and not form.is_submitted():
        form.owner_id.data = str(contact.owner_id or "")
        form.tags.data = ", ".join(tag.name for tag in contact.tags)
    return form


def _save(contact: Contact, form: ContactForm) -> None:
    services.update_contact(
        contact,
        current_user,
        institution=current_institution(),
        phone=form.phone.data,
        parent_name=form.parent_name.data,
        email=form.email.data,
        wechat_id=form.wechat_id.data,
        notes=form.notes.data,
        owner_id=int(form.owner_id.data) if form.owner_id.data else None,
    )
    services.set_tags(contact, (form.tags.data or "").split(","))


@staff.route("/contacts/new", methods=["GET", "POST"])
def contact_new():
    form = _contact_form()
    if form.validate_on_submit():
        try:
            contact, created = services.find_or_create_contact(
                current_institution(),
                phone=form.phone.data,
                details=services.ContactDetails(parent_name=form.parent_name.data),
                touch=services.Touch(SourceKind.STAFF),
                actor=current_user,
            )
            if not created:
                raise ServiceError(
                    _("A contact with this phone number already exists."),
                    field="phone",
                    code="phone_taken",
                )
            _save(contact, form)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Contact added."), "success")
            return redirect(url_for("contacts.contact_detail", contact_id=contact.id))
    return render_template("contacts/contact_form.html", form=form, contact=None), form_status(form)


@staff.get("/contacts/<int:contact_id>")
def contact_detail(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    return _detail_page(contact, NoteForm(), StudentForm())


def _touch_titles(touches) -> dict[tuple[str, str], str]:
    """{(kind, code): title}: the form, campaign or course each touch names, by its title
    rather than its code."""
    institution_id = current_institution().id
    lookups = {
        SourceKind.FORM: lead_queries.form_titles,
        SourceKind.CAMPAIGN: campaign_queries.campaign_titles,
        SourceKind.COURSE: course_queries.course_titles,
    }
    titles = {}
    for kind, lookup in lookups.items():
        codes = sorted({t.ref for t in touches if t.kind == kind and t.ref})
        titles.update(
            {(kind.value, code): title for code, title in lookup(institution_id, codes).items()}
        )
    return titles


def _detail_page(contact, note_form, student_form, status=200):
    touches = queries.touches(contact)
    return render_template(
        "contacts/contact_detail.html",
        contact=contact,
        note_form=note_form,
        student_form=student_form,
        events=queries.timeline(contact),
        touches=touches,
        touch_titles=_touch_titles(touches),
        leads=lead_queries.contact_leads(contact),
        stage_labels=STAGE_LABELS,
        places=campaign_queries.family_places(contact),
        member_labels=MEMBER_STATUS_LABELS,
        team_labels=TEAM_STATUS_LABELS,
        payments=payment_queries.family_payments(contact.id, shown=tuple(PaymentStatus)),
        payment_labels=PAYMENT_STATUS_LABELS,
        source_labels=SOURCE_LABELS,
        enrolments=course_queries.contact_enrolments(contact),
        enrolment_sources=course_models.SOURCE_LABELS,
        enrolment_labels=course_models.ENROLMENT_STATUS_LABELS,
        attendance_labels=course_models.ATTENDANCE_LABELS,
        campaign_actions=CAMPAIGN_EVENT_LABELS,
        points=loyalty_queries.balance(contact),
        points_entries=loyalty_queries.ledger(contact, limit=5),
        vip=vip_queries.vip_status(current_institution(), contact, utcnow()),
    ), status


@staff.route("/contacts/<int:contact_id>/edit", methods=["GET", "POST"])
def contact_edit(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    form = _contact_form(contact)
    if form.validate_on_submit():
        try:
            _save(contact, form)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Contact saved."), "success")
            return redirect(url_for("contacts.contact_detail", contact_id=contact.id))
    return render_template("contacts/contact_form.html", form=form, contact=contact), form_status(
        form
    )


@staff.post("/contacts/<int:contact_id>/notes")
def contact_note(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    form = NoteForm()
    if not form.validate_on_submit():
        return _detail_page(contact, form, StudentForm(), 422)
    services.add_note(contact, current_user, form.text.data)
    db.session.commit()
    return redirect(url_for("contacts.contact_detail", contact_id=contact.id))


@staff.post("/contacts/<int:contact_id>/students")
def contact_add_student(contact_id: int):
    contact = get_or_404(Contact, contact_id)
    form = StudentForm()
    if not form.validate_on_submit():
        return _detail_page(contact, NoteForm(), form, 422)
    services.add_student(
        contact,
        services.StudentDetails(
            form.name.data, form.grade.data or None, form.birth_year.data, form.school.data or None
        ),
    )
    db.session.commit()
    flash(_("Child added."), "success")
    return redirect(url_for("contacts.contact_detail", contact_id=contact.id))


@staff.route("/contacts/<int:contact_id>/merge", methods=["GET", "POST"])
@require_role(*MANAGERS)
def contact_merge(contact_id: int):
    """Fold a duplicate (found by its phone) into this contact."""
    survivor = get_or_404(Contact, contact_id)
    form = MergeForm()
    duplicate = None
    if form.validate_on_submit():
        try:
            number = services.normalise_phone(current_institution(), form.phone.data)
            duplicate = queries.contact_by_phone(current_institution(), number)
            if duplicate is None or duplicate.id == survivor.id:
                raise ServiceError(_("No other contact has this phone number."), field="phone")
            if request.form.get("confirm") == "yes":
                services.merge_contacts(survivor, duplicate, current_user)
                db.session.commit()
                flash(_("The two contacts are now one."), "success")
                return redirect(url_for("contacts.contact_detail", contact_id=survivor.id))
        except ServiceError as error:
            report(error, form)
            duplicate = None
    return render_template(
        "contacts/contact_merge.html", contact=survivor, form=form, duplicate=duplicate
    ), form_status(form)


@staff.route("/contacts/import", methods=["GET", "POST"])
@require_role(*MANAGERS)
def contact_import():
    """Upload a CSV, see every row checked, then confirm: all rows are applied or none."""
    form = ImportForm()
    preview = None
    if form.validate_on_submit():
        # The preview page carries the checked file back, so the confirmed import applies
        # exactly what was previewed.
        data = (
            form.file.data.read()
            if form.file.data
            else base64.b64decode(form.csv_text.data or "", validate=False)
        )
        if request.form.get("confirm") == "yes":
            try:
                applied = services.import_contacts(current_institution(), current_user, data)
            except ServiceError as error:
                report(error)
            else:
                db.session.commit()
                flash(_("%(n)s rows imported.", n=len(applied.rows)), "success")
                return redirect(url_for("contacts.contact_list"))
        preview = services.preview_import(current_institution(), data)
        form.csv_text.data = base64.b64encode(data).decode() if preview.is_valid else ""
    status = 422 if form.errors or (preview and not preview.is_valid) else 200
    return render_template(
        "contacts/contact_import.html", form=form, preview=preview, columns=services.IMPORT_COLUMNS
    ), status
