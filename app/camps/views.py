"""Check-in camps: staff pages under /staff/<slug>/camps (a camp belongs to a group), and
the family's camp page (/<slug>/camp/<code>): today's task, a check-in for each child, the
streaks, make-up cards and the leaderboard. Only the group's active members see it."""

from __future__ import annotations

import io
from datetime import date

from flask import (
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from flask_babel import gettext as _
from wtforms import SelectChoice

from app.accounts.models import MANAGERS
from app.camps import queries, services
from app.camps.forms import (
    TASK_FILE_MAX_BYTES,
    WEEKDAYS,
    CampForm,
    CheckInForm,
    JoinCampForm,
    PrivacyForm,
    TaskForm,
)
from app.camps.models import Camp, CampTask
from app.csvfile import csv_response
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter
from app.groups import queries as group_queries
from app.groups import services as groups
from app.groups.models import Group
from app.portal import services as portal
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url

staff = staff_blueprint("camps", __name__)
public = public_blueprint("camps_public", __name__)
BLUEPRINTS = [staff, public]


def _today() -> date:
    return queries.local_today(current_institution(), utcnow())


# --- staff ---------------------------------------------------------------------------------


@staff.route("/groups/<int:group_id>/camps/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def camp_new(group_id: int):
    return _save_camp(get_or_404(Group, group_id), None)


@staff.route("/camps/<int:camp_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def camp_edit(camp_id: int):
    camp = get_or_404(Camp, camp_id)
    return _save_camp(camp.group, camp)


def _save_camp(group: Group, camp: Camp | None):
    form = CampForm(obj=camp) if camp else CampForm()
    if form.validate_on_submit():
        try:
            if camp is None:
                camp = services.create_camp(current_institution(), group, **form.values())
            else:
                services.update_camp(camp, **form.values())
        except ServiceError as error:
            db.session.rollback()
            report(error, form)
        else:
            db.session.commit()
            flash(_("Camp saved."), "success")
            return redirect(url_for(".camp_detail", camp_id=camp.id))
    return render_template("camps/camp_form.html", form=form, group=group, camp=camp), form_status(
        form
    )


@staff.get("/camps/<int:camp_id>")
def camp_detail(camp_id: int):
    camp = get_or_404(Camp, camp_id)
    today = _today()
    return render_template(
        "camps/camp_detail.html",
        camp=camp,
        today=today,
        figures=queries.figures(camp, today),
        leaders=queries.leaderboard(camp, today),
        tasks=queries.tasks(camp),
        checkins=queries.recent_checkins(camp, limit=50),
        task_form=TaskForm(formdata=None, day=today if camp.runs_on(today) else camp.starts_on),
        camp_url=_camp_url(camp),
        weekday_labels={choice.value: choice.label for choice in WEEKDAYS},
    )


@staff.post("/camps/<int:camp_id>/tasks")
@require_role(*MANAGERS)
def task_save(camp_id: int):
    camp = get_or_404(Camp, camp_id)
    form = TaskForm()
    if form.validate_on_submit():
        try:
            services.set_task(
                current_institution(), camp, form.day.data, form.prompt.data, _task_file(form)
            )
        except ServiceError as error:
            db.session.rollback()
            flash(error.message, "error")
        else:
            db.session.commit()
            flash(_("Task saved."), "success")
    else:
        flash(_("The task was not saved: %(error)s", error=_first_error(form)), "error")
    return redirect(url_for(".camp_detail", camp_id=camp.id, _anchor="tasks"))


def _task_file(form: TaskForm):
    upload = form.file.data
    if not getattr(upload, "filename", None):
        return None
    data = upload.read(TASK_FILE_MAX_BYTES + 1)
    if len(data) > TASK_FILE_MAX_BYTES:
        raise ServiceError(_("The file is larger than 10 MB."), field="file", code="too_large")
    return upload.filename[-120:], upload.mimetype or "application/octet-stream", data


@staff.get("/camps/<int:camp_id>/export.csv")
def camp_export(camp_id: int):
    camp = get_or_404(Camp, camp_id)
    figures = queries.figures(camp, _today())
    header = [
        _("Child"),
        _("Parent"),
        _("Phone"),
        _("Check-ins"),
        _("Current streak"),
        _("Longest streak"),
        _("Make-up cards used"),
        *[day.isoformat() for day in figures.days],
    ]
    rows = (
        [
            s.student.name,
            s.student.contact.parent_name,
            s.student.contact.phone,
            s.streak.total,
            s.streak.current,
            s.streak.longest,
            s.makeup_used,
            *["1" if day in s.days else "" for day in figures.days],
        ]
        for s in figures.standings
    )
    return csv_response(f"camp-{camp.id}.csv", header, rows)


def _camp_url(camp: Camp) -> str:
    return external_url(
        "camps_public.camp_page", institution_slug=current_institution().slug, code=camp.code
    )


def _first_error(form) -> str:
    return next((errors[0] for errors in form.errors.values() if errors), _("check the form"))


# --- families --------------------------------------------------------------------------------


def _camp_and_family(code: str):
    """The camp, and the signed-in family if it is an active member of the camp's group;
    a family not signed in is sent to sign in and come back, anyone else gets a 404."""
    institution = current_institution()
    camp = queries.camp_by_code(institution, code) or abort(404)
    contact = portal.family_signed_in(institution, session)
    if contact is None:
        portal.come_back_after_sign_in(session, request.path)
        return camp, None
    member = group_queries.member_of(camp.group, contact)
    if member is None or not member.is_active:
        abort(404)
    return camp, contact


def _child_choices(contact) -> list[SelectChoice]:
    return [SelectChoice(student.id, student.name) for student in contact.students]


@public.get("/camp/<code>")
def camp_page(code: str):
    camp, contact = _camp_and_family(code)
    if contact is None:
        return redirect(url_for("portal.page"))
    return _render_camp(camp, contact, CheckInForm(formdata=None)), 200


def _render_camp(camp: Camp, contact, form: CheckInForm, error: str | None = None):
    now = utcnow()
    today = queries.local_today(current_institution(), now)
    children = list(contact.students)
    days = queries.checked_days(camp, [child.id for child in children])
    rows = queries.camp_children(camp)
    form.student.choices = _child_choices(contact)
    privacy = {
        child.id: PrivacyForm(
            formdata=None,
            student=child.id,
            hides_name=child.id in rows and rows[child.id].hides_name,
        )
        for child in children
    }
    for privacy_form in privacy.values():
        privacy_form.student.choices = _child_choices(contact)
    join_form = JoinCampForm(formdata=None)
    join_form.students.choices = [
        choice for choice in _child_choices(contact) if choice.value not in rows
    ]
    return render_template(
        "camps/camp_page.html",
        join_form=join_form,
        camp=camp,
        today=today,
        is_camp_day=camp.runs_on(today),
        in_window=camp.in_window(now.astimezone(current_institution().zone).time()),
        task=queries.task_for(camp, today),
        children=[
            {
                "student": child,
                "done_today": today in days.get(child.id, set()),
                "streak": queries.streak(camp, days.get(child.id, set()), today),
                "missed": queries.missed_days(camp, days.get(child.id, set()), today),
                "cards_left": camp.makeup_cards
                - (rows[child.id].makeup_used if child.id in rows else 0),
                "in_camp": child.id in rows,
            }
            for child in children
        ],
        leaders=queries.leaderboard(camp, today),
        leaders_by_total=queries.leaderboard(camp, today, by="total"),
        form=form,
        privacy=privacy,
        error=error,
        group_url=url_for("groups_public.group_page", code=camp.group.code),
    )


@public.post("/camp/<code>/check-in")
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_IP"])
def check_in(code: str):
    camp, contact = _camp_and_family(code)
    if contact is None:
        return redirect(url_for("portal.page"))
    form = CheckInForm()
    form.student.choices = _child_choices(contact)
    if not form.validate_on_submit():
        return _render_camp(camp, contact, form, _first_error(form)), 422
    institution = current_institution()
    try:
        day = date.fromisoformat(form.day.data) if form.day.data else None
    except ValueError:
        return _render_camp(camp, contact, form, _("Choose a missed day.")), 422
    student = next(s for s in contact.students if s.id == form.student.data)
    try:
        checkin, post = services.check_in(
            institution,
            camp,
            contact,
            student,
            form.body.data or "",
            pictures=form.uploaded_pictures(),
            day=day,
        )
    except ServiceError as error:
        db.session.rollback()
        return _render_camp(camp, contact, form, str(error.message)), 422
    db.session.commit()  # a blocked post too: the moderation log keeps it
    if checkin is None:
        return _render_camp(
            camp,
            contact,
            form,
            _("Not checked in: %(why)s", why=groups.broken_rules(post)),
        ), 422
    flash(_("Checked in. Well done!"), "success")
    return redirect(url_for(".camp_page", code=camp.code))


@public.post("/camp/<code>/join")
@limiter.limit("30 per minute")
def join(code: str):
    camp, contact = _camp_and_family(code)
    if contact is None:
        return redirect(url_for("portal.page"))
    form = JoinCampForm()
    form.students.choices = _child_choices(contact)
    if form.validate_on_submit() and form.students.data:
        chosen = [s for s in contact.students if s.id in set(form.students.data)]
        services.join_camp(current_institution(), camp, contact, chosen)
        db.session.commit()
        flash(_("Welcome to the camp! We will remind you on days not yet checked in."), "success")
    else:
        flash(_("Choose at least one child."), "error")
    return redirect(url_for(".camp_page", code=camp.code))


@public.post("/camp/<code>/privacy")
@limiter.limit("30 per minute")
def privacy(code: str):
    camp, contact = _camp_and_family(code)
    if contact is None:
        return redirect(url_for("portal.page"))
    form = PrivacyForm()
    form.student.choices = _child_choices(contact)
    if form.validate_on_submit():
        student = next(s for s in contact.students if s.id == form.student.data)
        services.set_name_hidden(
            current_institution(), camp, contact, student, form.hides_name.data
        )
        db.session.commit()
        flash(_("Saved."), "success")
    return redirect(url_for(".camp_page", code=camp.code, _anchor="leaderboard"))


@public.get("/camp/<code>/tasks/<int:task_id>/file")
def task_file(code: str, task_id: int):
    camp, contact = _camp_and_family(code)
    if contact is None:
        return redirect(url_for("portal.page"))
    task = db.session.get(CampTask, task_id)
    if task is None or task.camp_id != camp.id or task.file_data is None:
        abort(404)
    response = send_file(
        io.BytesIO(task.file_data),
        mimetype=task.file_type,
        as_attachment=True,
        download_name=task.file_name or "task",
    )
    response.headers["Cache-Control"] = "private, max-age=3600"
    return response
