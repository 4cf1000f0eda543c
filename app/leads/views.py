from __future__ import annotations

from types import SimpleNamespace
from urllib.parse import urlencode

from flask import (
    abort,
    current_app,
    flash,
    g,
    jsonify,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from wtforms import SelectChoice

from app import pagecache, sharing
from app.accounts import queries as account_queries
from app.accounts.models import MANAGERS
from app.contacts import queries as contact_queries
from app.contacts.models import SOURCE_LABELS, SourceKind
from app.contacts.services import Touch
from app.csvfile import csv_response
from app.db import utcnow
from app.errors import ServiceError, form_status, report, wants_json
from app.extensions import db, limiter, limits_reads
from app.forms import member_choices
from app.images import image_response, qr_response, update_picture
from app.leads import queries, services
from app.leads.forms import (
    CUSTOM_SLOTS,
    OPTIONAL_BUILTINS,
    BulkAssignForm,
    FollowUpForm,
    LeadFilterForm,
    LeadFormForm,
    OwnerForm,
    PipelineSettingsForm,
    PublicForm,
    StageForm,
)
from app.leads.models import BUILTIN_FIELDS, SOURCE_WORDS, FormTerms, Lead, LeadForm, Stage
from app.localtime import from_local, to_local
from app.loyalty import queries as loyalty_queries
from app.paging import paginate
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url
from app.web import bot_answer, list_page

staff = staff_blueprint("leads", __name__)
public = public_blueprint("lead_forms_public", __name__)
BLUEPRINTS = [staff, public]
PER_PAGE = 50


# --- building forms (staff) ------------------------------------------------------------------


@staff.get("/forms")
def form_list():
    return render_template("leads/form_list.html", forms=queries.all_forms(current_institution()))


def _builder(lead_form: LeadForm | None) -> LeadFormForm:
    """The builder form, filled from `lead_form` on GET."""
    form = LeadFormForm()
    if form.is_submitted():
        return form
    fields = lead_form.fields if lead_form else services.default_fields()
    by_key = {f["key"]: f for f in fields}
    form = LeadFormForm(obj=lead_form, formdata=None)
    if lead_form is None:
        form.is_open.data = True
    else:
        form.closes_at.data = to_local(lead_form.closes_at, current_institution().zone)
    for entry, key in zip(form.builtins, OPTIONAL_BUILTINS, strict=True):
        field = by_key.get(key)
        entry.key.data = key
        entry.include.data = field is not None
        entry.required.data = bool(field and field["required"])
        entry.caption.data = field["label"] if field else ""
    customs = [f for f in fields if f["key"].startswith("custom_")]
    for position, field in enumerate(customs):
        form.custom.append_entry(
            SimpleNamespace(
                **{
                    **field,
                    "caption": field["label"],
                    "choices": "\n".join(field.get("choices", [])),
                    "position": position,
                }
            )
        )
    for _slot in range(CUSTOM_SLOTS):
        form.custom.append_entry(SimpleNamespace(kind="short_text"))
    return form


def _fields_from(form: LeadFormForm) -> list[dict]:
    fields = [{"key": key} for key in ("parent_name", "phone")]
    for entry in form.builtins:
        key = entry.key.data
        if key in OPTIONAL_BUILTINS and entry.include.data:
            fields.append(
                {"key": key, "label": entry.caption.data, "required": entry.required.data}
            )
    customs = [entry for entry in form.custom if entry.caption.data]
    customs.sort(key=lambda entry: entry.position.data if entry.position.data is not None else 99)
    used = {entry.key.data for entry in customs if entry.key.data}
    next_number = 1
    for entry in customs:
        key = entry.key.data
        if not key or not key.startswith("custom_"):
            while f"custom_{next_number}" in used:
                next_number += 1
            key = f"custom_{next_number}"
            used.add(key)
        fields.append(
            {
                "key": key,
                "kind": entry.kind.data,
                "label": entry.caption.data,
                "help": entry.help.data,
                "required": entry.required.data,
                "choices": (entry.choices.data or "").splitlines(),
            }
        )
    return fields


def _save_builder(lead_form: LeadForm | None):
    form = _builder(lead_form)
    if form.validate_on_submit():
        try:
            saved = services.save_form(
                current_institution(),
                lead_form,
                title=form.title.data,
                intro=form.intro.data,
                fields=_fields_from(form),
                consent_text=form.consent_text.data or None,
                thank_you_message=form.thank_you_message.data or None,
                redirect_url=form.redirect_url.data or None,
                is_open=form.is_open.data,
                closes_at=from_local(form.closes_at.data, current_institution().zone),
                submission_cap=form.submission_cap.data,
            )
            update_picture(saved, remove=form.remove_cover.data, upload=form.cover.data)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Form saved."), "success")
            return redirect(url_for("leads.form_detail", form_id=saved.id))
    return render_template(
        "leads/form_edit.html",
        form=form,
        lead_form=lead_form,
        builtin_labels={k: v[0] for k, v in BUILTIN_FIELDS.items()},
        optional_builtins=OPTIONAL_BUILTINS,
    ), form_status(form)


@staff.route("/forms/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def form_new():
    return _save_builder(None)


@staff.route("/forms/<int:form_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def form_edit(form_id: int):
    return _save_builder(get_or_404(LeadForm, form_id))


def _share_url(lead_form: LeadForm) -> str:
    params = {
        key: request.args[key][:100]
        for key in ("utm_source", "utm_medium", "utm_campaign")
        if request.args.get(key)
    }
    if request.args.get("ref"):
        params["ref"] = request.args["ref"][:64]
    url = external_url(
        "lead_forms_public.form_page",
        institution_slug=current_institution().slug,
        code=lead_form.code,
    )
    return f"{url}?{urlencode(params)}" if params else url


@staff.get("/forms/<int:form_id>")
def form_detail(form_id: int):
    lead_form = get_or_404(LeadForm, form_id)
    return render_template(
        "leads/form_detail.html",
        lead_form=lead_form,
        share_url=_share_url(lead_form),
        share_args={k: v for k, v in request.args.items() if v},
        my_ref=f"staff-{current_user.id}",
        stats=queries.source_stats(lead_form),
        submissions=queries.submissions(lead_form, limit=100),
        closed_reason=lead_form.closed_reason(utcnow()),
        field_labels=_field_labels(lead_form),
        source_words=SOURCE_WORDS,
    )


def _field_labels(lead_form: LeadForm) -> dict:
    return {
        f["key"]: f["label"] or BUILTIN_FIELDS.get(f["key"], (f["key"],))[0]
        for f in lead_form.fields
    }


@staff.get("/forms/<int:form_id>/qr.svg", defaults={"fmt": "svg"})
@staff.get("/forms/<int:form_id>/qr.png", defaults={"fmt": "png"})
def form_qr(form_id: int, fmt: str):
    """The share link (with the same ref and UTM parameters) as a QR code to download."""
    lead_form = get_or_404(LeadForm, form_id)
    return qr_response(_share_url(lead_form), fmt, f"form-{lead_form.code}")


@staff.get("/forms/<int:form_id>/submissions.csv")
@require_role(*MANAGERS)
def form_submissions_export(form_id: int):
    lead_form = get_or_404(LeadForm, form_id)
    labels = _field_labels(lead_form)
    keys = list(labels)
    zone = current_institution().zone
    rows = (
        [
            s.created_at.astimezone(zone).isoformat(),
            s.source,
            s.referral_code or "",
            *(", ".join(v) if isinstance(v := s.answers.get(k, ""), list) else v for k in keys),
        ]
        for s in queries.submissions(lead_form, limit=None)
    )
    return csv_response(
        f"form-{lead_form.code}.csv",
        ["submitted_at", "source", "ref", *(str(labels[k]) for k in keys)],
        rows,
    )


# --- the public form -------------------------------------------------------------------------


def _form_key() -> str:
    return f"lead-form:{g.get('institution_slug')}:{request.view_args.get('code', '')}"


def _raw_answers(terms: FormTerms) -> dict:
    answers = {}
    for field in terms.fields:
        if field["kind"] == "multi_choice":
            answers[field["key"]] = request.form.getlist(field["key"])[:50]
        else:
            answers[field["key"]] = request.form.get(field["key"], "")
    return answers


def _view_of(visit, code: str):
    touch = Touch.from_request(SourceKind.FORM, code, visit.args, visit.referrer)
    return services.view_of(code, touch)


@public.route("/f/<code>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["FORM_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["FORM_LIMIT_PER_FORM"], methods=["POST"], key_func=_form_key
)
@pagecache.cached(lambda code: [("lead_form", code)], count=_view_of)
def form_page(code: str):
    institution = current_institution()
    if request.method == "GET":
        return _render_form(code)
    # Decided on the form's terms kept in memory: its row is read only to show it again.
    terms = services.form_terms(institution, code) or abort(404)
    public_form = PublicForm()
    touch = Touch.from_request(SourceKind.FORM, terms.code, request.args, public_form.referrer.data)
    errors, closed_reason = {}, terms.closed_reason(utcnow())
    if closed_reason is None and public_form.validate_on_submit():
        if public_form.is_bot():
            return bot_answer()
        try:
            services.submit_form(
                institution,
                terms,
                _raw_answers(terms),
                consent_given=public_form.consent.data,
                touch=touch,
            )
        except services.SubmissionInvalid as error:
            db.session.rollback()
            errors = error.errors
        except ServiceError as error:
            db.session.rollback()  # (refused at the end: what it wrote goes)
            report(error)
            closed_reason = "closed"
        else:
            redirect_url = terms.redirect_url or url_for(".form_thanks", code=code)
            db.session.commit()
            return redirect(redirect_url)
    lead_form = queries.form_by_code(institution, code) or abort(404)
    return _render_form(code, lead_form, public_form, errors, closed_reason)


def _render_form(code, lead_form=None, public_form=None, errors=None, closed_reason=None):
    """The public form: blank (GET, which app.pagecache may keep), or sent back with the
    problems of a submission (POST)."""
    if lead_form is None:
        lead_form = queries.form_by_code(current_institution(), code) or abort(404)
        closed_reason = lead_form.closed_reason(utcnow())
        pagecache.fresh_until(lead_form.closes_at)
    errors = errors or {}
    public_form = public_form or PublicForm(formdata=None)
    status = 410 if closed_reason else (422 if errors or public_form.errors else 200)
    return render_template(
        "leads/public_form.html",
        lead_form=lead_form,
        public_form=public_form,
        errors=errors,
        values=request.form,
        closed_reason=closed_reason,
        labels=_field_labels(lead_form),
    ), status


@public.get("/f/<code>/poster.png")
@limits_reads
@limiter.limit(lambda: current_app.config["POSTER_LIMIT_PER_IP"])
def form_poster(code: str):
    """The form's share poster (app.sharing): its QR code carries the link's UTM
    parameters and `ref` (a family's code, or a staff member's)."""
    lead_form = queries.form_by_code(current_institution(), code) or abort(404)
    if lead_form.closed_reason(utcnow()) is not None:
        abort(404)
    params = {
        key: request.args[key][:100]
        for key in ("utm_source", "utm_medium", "utm_campaign")
        if request.args.get(key)
    }
    link = external_url(
        "lead_forms_public.form_page", institution_slug=current_institution().slug, code=code
    )
    return sharing.poster_response(
        current_institution(),
        link=f"{link}?{urlencode(params)}" if params else link,
        family_by_ref=loyalty_queries.contact_by_referral_code,
        title=lead_form.title,
        subtitle=lead_form.intro,
        cover_of=lead_form,
    )


@public.get("/f/<code>/cover")
def form_cover(code: str):
    lead_form = queries.form_by_code(current_institution(), code)
    if lead_form is None or not lead_form.has_cover:
        abort(404)
    return image_response(lead_form.cover, lead_form.cover_content_type, lead_form.cover_updated_at)


@public.get("/f/<code>/thanks")
def form_thanks(code: str):
    lead_form = queries.form_by_code(current_institution(), code) or abort(404)
    return render_template("leads/public_thanks.html", lead_form=lead_form)


# --- the pipeline ----------------------------------------------------------------------------


def _member_choices(blank_label) -> list[SelectChoice]:
    return member_choices(account_queries.institution_members(current_institution()), blank_label)


def _lead_filters() -> tuple[LeadFilterForm, queries.LeadFilters]:
    form = LeadFilterForm(request.args)
    form.owner.choices = _member_choices(_("Anyone"))
    form.form.choices = [
        SelectChoice("", _("Any form")),
        *(SelectChoice(str(f.id), f.title) for f in queries.all_forms(current_institution())),
    ]
    form.validate()
    stage = request.args.get("stage", "")
    filters = queries.LeadFilters(
        stage=Stage(stage) if stage in set(Stage) else None,
        owner_id=request.args.get("owner", type=int),
        form_id=request.args.get("form", type=int),
        source="" if form.source.errors else (form.source.data or ""),
        created_from=None if form.created_from.errors else form.created_from.data,
        created_to=None if form.created_to.errors else form.created_to.data,
    )
    return form, filters


@staff.get("/leads")
def lead_list():
    form, filters = _lead_filters()
    number, args = list_page()
    page = paginate(queries.filtered_leads(current_institution(), filters), number, PER_PAGE)
    bulk = BulkAssignForm()
    bulk.owner_id.choices = _member_choices(_("Nobody"))
    return render_template(
        "leads/lead_list.html",
        form=form,
        leads=page.items,
        page=page,
        args=args,
        bulk=bulk,
        now=utcnow(),
    )


@staff.get("/leads/board")
def lead_board():
    form, filters = _lead_filters()
    return render_template(
        "leads/lead_board.html",
        form=form,
        columns=queries.board(current_institution(), filters),
        args={k: v for k, v in request.args.items() if v},
        now=utcnow(),
        stage_form=StageForm(),
        lost_reasons=services.lost_reason_names(current_institution()),
    )


@staff.get("/leads/due")
def lead_due():
    """My follow-ups due today, overdue first."""
    return render_template(
        "leads/lead_due.html",
        leads=queries.follow_ups_due(current_institution(), current_user.id, utcnow()),
        now=utcnow(),
    )


@staff.get("/leads/export.csv")
@require_role(*MANAGERS)
def lead_export():
    _form, filters = _lead_filters()
    zone = current_institution().zone
    rows = (
        [
            lead.contact.parent_name,
            lead.contact.phone,
            lead.stage.value,
            lead.lost_reason or "",
            lead.owner.name if lead.owner else "",
            lead.form.title if lead.form else "",
            lead.source or "",
            lead.created_at.astimezone(zone).isoformat(),
        ]
        for lead in db.session.scalars(queries.filtered_leads(current_institution(), filters))
    )
    return csv_response(
        f"leads-{current_institution().slug}.csv",
        ["parent_name", "phone", "stage", "lost_reason", "owner", "form", "source", "created_at"],
        rows,
    )


def _lead_page(lead: Lead, stage_form=None, owner_form=None, follow_up=None, status=200):
    stage_form = stage_form or StageForm(stage=lead.stage.value)
    stage_form.lost_reason.choices = _lost_reason_choices()
    owner_form = owner_form or OwnerForm(owner_id=str(lead.owner_id or ""))
    owner_form.owner_id.choices = _member_choices(_("Nobody"))
    return render_template(
        "leads/lead_detail.html",
        lead=lead,
        contact=lead.contact,
        stage_form=stage_form,
        owner_form=owner_form,
        follow_up=follow_up or FollowUpForm(),
        events=contact_queries.timeline(lead.contact),
        source_labels=SOURCE_LABELS,
        stage_labels={stage.value: stage.label for stage in Stage},
        now=utcnow(),
    ), status


def _lost_reason_choices() -> list[SelectChoice]:
    return [
        SelectChoice("", _("Choose a reason")),
        *(SelectChoice(n, n) for n in services.lost_reason_names(current_institution())),
    ]


@staff.get("/leads/<int:lead_id>")
def lead_detail(lead_id: int):
    return _lead_page(get_or_404(Lead, lead_id))


@staff.post("/leads/<int:lead_id>/stage")
def lead_stage(lead_id: int):
    """Move a lead: the form of the lead page and of a board card, and a card dropped on
    another column (static/js/board.js sends that card's form asking for JSON, and puts
    the card back with the message when the answer is a refusal)."""
    lead = get_or_404(Lead, lead_id)
    form = StageForm()
    form.lost_reason.choices = _lost_reason_choices()
    refusal = None
    if form.validate_on_submit():
        try:
            services.move_lead(
                lead,
                Stage(form.stage.data),
                current_user,
                lost_reason=form.lost_reason.data or None,
            )
        except ServiceError as error:
            refusal = error
        else:
            db.session.commit()
            message = _("Moved to %(stage)s.", stage=lead.stage.label)
            if wants_json():
                return jsonify(stage=lead.stage.value, label=str(lead.stage.label), message=message)
            flash(message, "success")
            if request.form.get("back") == "board":
                return redirect(url_for("leads.lead_board"))
            return redirect(url_for("leads.lead_detail", lead_id=lead.id))
    if wants_json():
        db.session.rollback()
        if refusal is None:
            refusal = ServiceError(next(iter(form.errors.values()))[0])
        return jsonify(error=refusal.code, field=refusal.field, message=str(refusal.message)), 422
    if refusal is not None:
        report(refusal, form)
    return _lead_page(get_or_404(Lead, lead_id), stage_form=form, status=422)


@staff.post("/leads/<int:lead_id>/owner")
def lead_owner(lead_id: int):
    lead = get_or_404(Lead, lead_id)
    form = OwnerForm()
    form.owner_id.choices = _member_choices(_("Nobody"))
    if not form.validate_on_submit():
        return _lead_page(lead, owner_form=form, status=422)
    owner = _member_user(form.owner_id.data)
    services.assign_leads([lead], owner, current_user)
    db.session.commit()
    flash(_("Owner changed."), "success")
    return redirect(url_for("leads.lead_detail", lead_id=lead.id))


def _member_user(user_id: str):
    if not user_id:
        return None
    for membership in account_queries.institution_members(current_institution()):
        if str(membership.user_id) == user_id:
            return membership.user
    abort(404)


@staff.post("/leads/<int:lead_id>/follow-up")
def lead_follow_up(lead_id: int):
    lead = get_or_404(Lead, lead_id)
    form = FollowUpForm()
    if not form.validate_on_submit():
        return _lead_page(lead, follow_up=form, status=422)
    services.add_follow_up(
        lead,
        current_user,
        form.text.data,
        from_local(form.next_contact_at.data, current_institution().zone),
    )
    db.session.commit()
    flash(_("Follow-up saved."), "success")
    return redirect(url_for("leads.lead_detail", lead_id=lead.id))


@staff.post("/leads/assign")
@require_role(*MANAGERS)
def lead_bulk_assign():
    form = BulkAssignForm()
    form.owner_id.choices = _member_choices(_("Nobody"))
    if form.validate_on_submit() and form.lead_ids.data:
        leads = queries.leads_by_ids(current_institution(), form.lead_ids.data)
        services.assign_leads(leads, _member_user(form.owner_id.data), current_user)
        db.session.commit()
        flash(_("%(n)s leads assigned.", n=len(leads)), "success")
    else:
        flash(_("Choose the leads to assign first."), "error")
    return redirect(url_for("leads.lead_list"))


@staff.route("/leads/settings", methods=["GET", "POST"])
@require_role(*MANAGERS)
def pipeline_settings():
    institution = current_institution()
    members = account_queries.institution_members(institution)
    form = PipelineSettingsForm()
    form.round_robin.choices = [SelectChoice(m.user_id, m.user.name) for m in members]
    if form.validate_on_submit():
        try:
            services.set_lost_reasons(institution, form.lost_reasons.data.splitlines())
            services.set_round_robin(institution, form.round_robin.data or [])
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Pipeline settings saved."), "success")
            return redirect(url_for("leads.pipeline_settings"))
    elif not form.is_submitted():
        form.lost_reasons.data = "\n".join(services.lost_reason_names(institution))
        form.round_robin.data = queries.round_robin_user_ids(institution)
    return render_template("leads/pipeline_settings.html", form=form), form_status(form)
