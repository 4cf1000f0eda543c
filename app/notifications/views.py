from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice

from app.accounts.models import MANAGERS
from app.errors import ServiceError, form_status, report
from app.extensions import db
from app.forms import ConfirmForm
from app.notifications import kinds, queries, services
from app.notifications.forms import (
    CHANNEL_LABELS,
    MessageTemplateForm,
    OutboxFilterForm,
    ReminderSettingsForm,
)
from app.notifications.models import Channel, OutboxMessage, OutboxStatus
from app.tenancy import current_institution, get_or_404, require_role, staff_blueprint
from app.web import list_page

staff = staff_blueprint("notifications", __name__)
BLUEPRINTS = [staff]
PER_PAGE = 50
STATUS_LABELS = {
    OutboxStatus.PENDING: _l("Scheduled"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Failed"),
    OutboxStatus.CANCELLED: _l("Cancelled"),
}
TEMPLATE_LABELS = {
    "welcome": _l("Welcome"),
    "invitation": _l("Team invitation"),
    "password_reset": _l("Password reset"),
    "new_lead": _l("New lead"),
    **{name: kind.label for name, kind in kinds.KINDS.items()},
}
LANGUAGE_LABELS = {"zh_CN": "简体中文", "en": "English"}


def _outbox_filters() -> tuple[OutboxFilterForm, queries.OutboxFilters]:
    form = OutboxFilterForm(request.args)
    form.status.choices = [
        SelectChoice("", _("Any status")),
        *(SelectChoice(s.value, label) for s, label in STATUS_LABELS.items()),
    ]
    form.channel.choices = [
        SelectChoice("", _("Any channel")),
        *(SelectChoice(c.value, label) for c, label in CHANNEL_LABELS.items()),
    ]
    form.kind.choices = [
        SelectChoice("", _("Any kind")),
        *(SelectChoice(name, label) for name, label in TEMPLATE_LABELS.items()),
    ]
    form.validate()
    status, channel = request.args.get("status", ""), request.args.get("channel", "")
    filters = queries.OutboxFilters(
        status=OutboxStatus(status) if status in set(OutboxStatus) else None,
        channel=Channel(channel) if channel in set(Channel) else None,
        kind=request.args.get("kind", "") if request.args.get("kind") in TEMPLATE_LABELS else "",
        recipient="" if form.recipient.errors else (form.recipient.data or ""),
    )
    return form, filters


@staff.get("/notifications")
@require_role(*MANAGERS)
def outbox():
    """What was sent, what is scheduled and what failed, newest first, filterable."""
    form, filters = _outbox_filters()
    number, args = list_page()
    page = queries.institution_messages(current_institution(), filters, number, PER_PAGE)
    return render_template(
        "notifications/outbox.html",
        form=form,
        messages=page.items,
        page=page,
        args=args,
        confirm_form=ConfirmForm(),
        status_labels=STATUS_LABELS,
        template_labels=TEMPLATE_LABELS,
        channel_labels=CHANNEL_LABELS,
    )


@staff.post("/notifications/<int:message_id>/retry")
@require_role(*MANAGERS)
def retry(message_id: int):
    message = get_or_404(OutboxMessage, message_id)
    services.retry_message(message)
    db.session.commit()
    flash(_("The message will be sent again now."), "success")
    return redirect(url_for("notifications.outbox", status="failed"))


@staff.route("/notifications/reminders", methods=["GET", "POST"])
@require_role(*MANAGERS)
def reminder_settings():
    institution = current_institution()
    settings = services.saved_reminder_terms(institution.id)  # a GET writes nothing
    form = ReminderSettingsForm()
    if request.method == "GET":
        form.morning_time.data = settings.morning_time or ""
        form.minutes_before.data = ", ".join(str(m) for m in settings.minutes_before)
        form.channels.data = list(settings.channels)
    if form.validate_on_submit():
        services.update_reminder_settings(
            institution.id,
            morning_time=form.morning_time.data or None,
            minutes_before=getattr(form.minutes_before, "minutes", []),
            channels=form.channels.data,
        )
        db.session.commit()
        flash(_("Reminder settings saved. They apply to seats booked from now on."), "success")
        return redirect(url_for(".reminder_settings"))
    return render_template("notifications/reminder_settings.html", form=form), form_status(form)


@staff.get("/notifications/templates")
@require_role(*MANAGERS)
def template_list():
    institution = current_institution()
    rows = [
        (
            name,
            kind,
            {loc: services.message_text(institution.id, name, loc)[2] for loc in LANGUAGE_LABELS},
        )
        for name, kind in kinds.KINDS.items()
    ]
    return render_template(
        "notifications/template_list.html", rows=rows, language_labels=LANGUAGE_LABELS
    )


@staff.route("/notifications/templates/<kind>/<locale>", methods=["GET", "POST"])
@require_role(*MANAGERS)
def template_edit(kind: str, locale: str):
    """Edit one message's wording in one language, with a preview on sample values."""
    if kind not in kinds.KINDS or locale not in LANGUAGE_LABELS:
        abort(404)
    institution = current_institution()
    subject, body, is_custom = services.message_text(institution.id, kind, locale)
    form = MessageTemplateForm(data={"subject": subject, "body": body})
    preview = None
    if form.validate_on_submit():
        try:
            if form.action.data == "preview":
                error = kinds.check(form.subject.data, form.body.data, locale)
                if error:
                    raise ServiceError(
                        _("This text cannot be used: %(error)s", error=error), field="body"
                    )
                sample = {**kinds.SAMPLE_CONTEXT, "institution_name": institution.name}
                preview = kinds.render(form.subject.data, form.body.data, sample, locale)
            else:
                services.save_message_text(
                    institution.id, kind, locale, form.subject.data, form.body.data
                )
                db.session.commit()
                flash(_("Message saved."), "success")
                return redirect(url_for(".template_list"))
        except ServiceError as error:
            report(error, form)
    return render_template(
        "notifications/template_edit.html",
        form=form,
        kind=kind,
        kind_label=kinds.KINDS[kind].label,
        variables=[(v, kinds.VARIABLE_LABELS[v]) for v in kinds.KINDS[kind].variables],
        locale=locale,
        language=LANGUAGE_LABELS[locale],
        is_custom=is_custom,
        preview=preview,
        confirm_form=ConfirmForm(),
    ), form_status(form)


@staff.post("/notifications/templates/<kind>/<locale>/reset")
@require_role(*MANAGERS)
def template_reset(kind: str, locale: str):
    if kind not in kinds.KINDS or locale not in LANGUAGE_LABELS:
        abort(404)
    if ConfirmForm().validate_on_submit():
        services.reset_message_text(current_institution().id, kind, locale)
        db.session.commit()
        flash(_("The message is back to Cohort's wording."), "success")
    return redirect(url_for(".template_list"))
