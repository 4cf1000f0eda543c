"""The parent's own page at /<institution>/me.

A family is signed in to one institution's page at a time per institution (the session
keeps {institution id: contact id}); no password: a signed link from any of our messages,
or a one-time link sent to the family's phone or e-mail.
"""

from __future__ import annotations

from datetime import date, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l

from app.campaigns import queries as campaign_queries
from app.campaigns.models import MEMBER_STATUS_LABELS, TEAM_STATUS_LABELS
from app.contacts import services as contacts
from app.contacts.models import Contact
from app.courses import queries as course_queries
from app.courses import services as courses
from app.courses.models import SEAT_STATUS_LABELS, SeatStatus
from app.db import utcnow
from app.errors import ServiceError, report
from app.extensions import db, limiter
from app.forms import ConfirmForm
from app.groups import queries as group_queries
from app.localtime import to_local
from app.loyalty import queries as loyalty_queries
from app.memberships import services as memberships
from app.notifications.models import Channel
from app.payments import queries as payment_queries
from app.payments.models import PAYMENT_STATUS_LABELS, PaymentStatus
from app.portal import queries, services
from app.portal.forms import SignInForm
from app.tenancy import current_institution, public_blueprint
from app.web import safe_next

public = public_blueprint("portal", __name__)
BLUEPRINTS = [public]


def signed_in_contact() -> Contact | None:
    return services.family_signed_in(current_institution(), session)


def _phone_key() -> str:
    return f"portal-link:{current_institution().id}:{request.form.get('phone', '')[-8:]}"


@public.get("/me")
def page():
    contact = signed_in_contact()
    if contact is None:
        return render_template("portal/sign_in.html", form=SignInForm())
    now = utcnow()
    seats = course_queries.family_seats(contact)
    upcoming = [s for s in seats if s.lesson.ends_at > now]
    week_ends = now + timedelta(days=7)
    zone = current_institution().zone
    return render_template(
        "portal/page.html",
        contact=contact,
        this_week=_by_day([s for s in upcoming if s.lesson.starts_at < week_ends], zone),
        later=[s for s in upcoming if s.lesson.starts_at >= week_ends],
        today=to_local(now, zone).date(),
        past=[s for s in seats if s.lesson.ends_at <= now][-10:],
        places=campaign_queries.family_places(contact),
        member_labels=MEMBER_STATUS_LABELS,
        team_labels=TEAM_STATUS_LABELS,
        payments=payment_queries.family_payments(contact.id),
        payment_labels=PAYMENT_STATUS_LABELS,
        purpose_labels=PURPOSE_LABELS,
        now=now,
        enrolments=course_queries.contact_enrolments(contact),
        messages=queries.inbox(contact),
        can_cancel={s.id for s in seats if s.parent_can_cancel(now)},
        positions={
            s.id: course_queries.waitlist_position(s)
            for s in seats
            if s.status == SeatStatus.WAITLISTED
        },
        seat_labels=SEAT_STATUS_LABELS,
        points=loyalty_queries.family_points(current_institution(), contact),
        groups=group_queries.family_groups(contact),
        vip=memberships.family_vip(current_institution(), contact, now),
        confirm_form=ConfirmForm(),
    )


# What each payment was for, as a family reads it (payments' `purpose`).
PURPOSE_LABELS = {
    "course_registration": _l("Course"),
    "group_buy": _l("Group buy"),
    "flash_sale": _l("Flash sale"),
    "vip": _l("VIP membership"),
}


def _by_day(seats: list, zone: ZoneInfo) -> list[tuple[date, list]]:
    """Seats grouped by the local day of their lesson, in order: the week as a calendar."""
    days: dict[date, list] = {}
    for seat in seats:
        days.setdefault(to_local(seat.lesson.starts_at, zone).date(), []).append(seat)
    return list(days.items())


@public.post("/me")
@limiter.limit(lambda: current_app.config["SIGN_IN_LINK_LIMIT"])
@limiter.limit(lambda: current_app.config["SIGN_IN_LINK_LIMIT"], key_func=_phone_key)
def request_link():
    form = SignInForm()
    if form.validate_on_submit():
        try:
            services.send_sign_in_link(
                current_institution(), form.phone.data, Channel(form.channel.data)
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            return render_template("portal/link_sent.html")
    return render_template("portal/sign_in.html", form=form), 422


@public.get("/me/t/<token>")
def open_link(token: str):
    """A link from one of our messages: reusable until it expires."""
    try:
        contact = contacts.contact_from_parent_link(current_institution(), token)
    except ServiceError as error:
        return render_template("portal/link_invalid.html", message=error.message), 400
    services.sign_family_in(session, contact)
    after = services.where_after_sign_in(session)
    return redirect(safe_next(request.args.get("next")) or safe_next(after) or url_for(".page"))


@public.route("/me/l/<code>", methods=["GET", "POST"])
def sign_in_link(code: str):
    """A one-time link. Opening it shows a button: chat apps fetch links to preview them,
    and a GET that spent the link would leave the parent with a dead one."""
    form = ConfirmForm()
    if request.method == "GET" or not form.validate_on_submit():
        return render_template("portal/sign_in_confirm.html", form=form)
    try:
        contact = services.use_sign_in_link(current_institution(), code)
    except ServiceError as error:
        db.session.rollback()
        return render_template("portal/link_invalid.html", message=error.message), 400
    db.session.commit()
    services.sign_family_in(session, contact)
    after = services.where_after_sign_in(session)
    return redirect(safe_next(request.args.get("next")) or safe_next(after) or url_for(".page"))


@public.get("/me/payments/<int:payment_id>/receipt")
def receipt(payment_id: int):
    """A receipt for a payment the family made (theirs only: another's is a 404)."""
    contact = signed_in_contact() or abort(404)
    payment = payment_queries.family_payment(contact.id, payment_id) or abort(404)
    if payment.status not in (PaymentStatus.CAPTURED, PaymentStatus.REFUNDED):
        abort(404)
    return render_template(
        "portal/receipt.html",
        contact=contact,
        payment=payment,
        purpose=PURPOSE_LABELS.get(payment.purpose, payment.purpose),
        payment_labels=PAYMENT_STATUS_LABELS,
    )


@public.post("/me/seats/<int:seat_id>/cancel")
def cancel_seat(seat_id: int):
    contact = signed_in_contact() or abort(404)
    seat = course_queries.family_seat(contact, seat_id) or abort(404)
    if not ConfirmForm().validate_on_submit() or not seat.parent_can_cancel(utcnow()):
        flash(_("This place can no longer be cancelled online. Please call us."), "error")
        return redirect(url_for(".page"))
    courses.cancel_seat(current_institution(), seat)
    db.session.commit()
    flash(_("Your place is cancelled. Thank you for telling us."), "success")
    return redirect(url_for(".page"))


@public.post("/me/sign-out")
def sign_out():
    if ConfirmForm().validate_on_submit():
        services.sign_family_out(session, current_institution())
    return redirect(url_for(".page"))
