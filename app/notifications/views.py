from __future__ import annotations

from flask import flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.accounts.models import MANAGERS
from app.extensions import db
from app.forms import ConfirmForm
from app.notifications import queries, services
from app.notifications.models import OutboxMessage, OutboxStatus
from app.tenancy import get_or_404, require_role, staff_blueprint
from app.web import list_page

staff = staff_blueprint("notifications", __name__)
BLUEPRINTS = [staff]
PER_PAGE = 50
STATUS_LABELS = {
    OutboxStatus.PENDING: _l("Waiting"),
    OutboxStatus.SENT: _l("Sent"),
    OutboxStatus.FAILED: _l("Failed"),
    OutboxStatus.CANCELLED: _l("Cancelled"),
}
TEMPLATE_LABELS = {
    "welcome": _l("Welcome"),
    "invitation": _l("Team invitation"),
    "password_reset": _l("Password reset"),
}


@staff.get("/notifications")
@require_role(*MANAGERS)
def outbox():
    """What was sent, what is waiting and what failed, newest first."""
    status_arg = request.args.get("status", "")
    status = OutboxStatus(status_arg) if status_arg in set(OutboxStatus) else None
    page, _args = list_page()
    messages, total = queries.institution_messages(status, page, PER_PAGE)
    return render_template(
        "notifications/outbox.html",
        messages=messages,
        total=total,
        page=page,
        pages=max((total + PER_PAGE - 1) // PER_PAGE, 1),
        status=status,
        statuses=list(OutboxStatus),
        confirm_form=ConfirmForm(),
        status_labels=STATUS_LABELS,
        template_labels=TEMPLATE_LABELS,
    )


@staff.post("/notifications/<int:message_id>/retry")
@require_role(*MANAGERS)
def retry(message_id: int):
    message = get_or_404(OutboxMessage, message_id)
    services.retry_message(message)
    db.session.commit()
    flash(_("The message will be sent again now."), "success")
    return redirect(url_for("notifications.outbox", status="failed"))
