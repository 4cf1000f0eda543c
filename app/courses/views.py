from __future__ import annotations

from datetime import timedelta

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from icalendar import Calendar, Event
from wtforms import SelectChoice

from app import pagecache, sharing
from app.accounts import queries as account_queries
from app.accounts.models import MANAGERS
from app.contacts.models import SourceKind
from app.contacts.services import Touch
from app.courses import queries, services
from app.courses.forms import (
    CourseForm,
    EnrolForm,
    LessonForm,
    PaidRegistrationForm,
    RegistrationForm,
)
from app.courses.models import (
    ATTENDANCE_LABELS,
    ENROLMENT_STATUS_LABELS,
    KIND_LABELS,
    SEAT_STATUS_LABELS,
    SOURCE_LABELS,
    Attendance,
    Course,
    CourseKind,
    Enrolment,
    Lesson,
    NextStep,
    Seat,
    SeatStatus,
)
from app.csvfile import csv_response
from app.db import utcnow
from app.errors import ServiceError, form_status, report
from app.extensions import db, limiter, limits_reads
from app.forms import ConfirmForm, member_choices
from app.groups import queries as group_queries
from app.images import image_response, qr_response, update_picture
from app.localtime import from_local, to_local
from app.loyalty import queries as loyalty_queries
from app.money import format_money, to_major, to_minor
from app.paging import paginate
from app.payments import checkout
from app.payments import services as payments
from app.payments.models import PaymentStatus
from app.tenancy import (
    current_institution,
    get_or_404,
    public_blueprint,
    require_role,
    staff_blueprint,
)
from app.urls import external_url
from app.web import bot_answer, current_language, list_page

staff = staff_blueprint("courses", __name__)
public = public_blueprint("courses_public", __name__)
BLUEPRINTS = [staff, public]
PER_PAGE = 50
LABELS = {
    "kind_labels": KIND_LABELS,
    "seat_labels": SEAT_STATUS_LABELS,
    "attendance_labels": ATTENDANCE_LABELS,
    "source_labels": SOURCE_LABELS,
    "enrolment_labels": ENROLMENT_STATUS_LABELS,
}


# --- courses (staff) -------------------------------------------------------------------------


@staff.get("/courses")
def course_list():
    courses = queries.all_courses(current_institution())
    ids = [course.id for course in courses]
    return render_template(
        "courses/course_list.html",
        courses=courses,
        next_lessons=queries.next_lessons(ids, utcnow()),
        enrolled=queries.enrolment_counts(ids),
        **LABELS,
    )


def _save_course(course: Course | None):
    institution = current_institution()
    form = CourseForm(obj=course) if course else CourseForm()
    form.teacher_id.choices = member_choices(
        account_queries.institution_members(institution), _("Nobody yet")
    )
    if request.method == "GET" and course is not None:
        form.teacher_id.data = str(course.teacher_id or "")
        form.price.data = to_major(course.price_amount, course.currency)
    if form.validate_on_submit():
        try:
            saved = services.save_course(
                institution,
                course,
                title=form.title.data,
                kind=CourseKind(form.kind.data),
                subject=form.subject.data or None,
                grade_range=form.grade_range.data or None,
                description=form.description.data or None,
                teacher_id=int(form.teacher_id.data) if form.teacher_id.data else None,
                price_amount=to_minor(form.price.data, institution.currency),
                capacity=form.capacity.data,
                is_open=form.is_open.data,
                next_step=NextStep(form.next_step.data),
                next_step_text=form.next_step_text.data or None,
            )
            update_picture(saved, remove=form.remove_cover.data, upload=form.cover.data)
            update_picture(
                saved,
                remove=form.remove_teacher_qr.data,
                upload=form.teacher_qr.data,
                picture="teacher_qr",
            )
            services.check_next_step(saved)
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Course saved."), "success")
            return redirect(url_for(".course_detail", course_id=saved.id))
    return render_template("courses/course_form.html", form=form, course=course), form_status(form)


@staff.route("/courses/new", methods=["GET", "POST"])
@require_role(*MANAGERS)
def course_new():
    return _save_course(None)


@staff.route("/courses/<int:course_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def course_edit(course_id: int):
    return _save_course(get_or_404(Course, course_id))


def _share_url(course: Course) -> str:
    return external_url(
        "courses_public.course_page", institution_slug=current_institution().slug, code=course.code
    )


@staff.get("/courses/<int:course_id>")
def course_detail(course_id: int):
    course = get_or_404(Course, course_id)
    number, args = list_page()
    page = paginate(queries.course_enrolments(course), number, PER_PAGE)
    return render_template(
        "courses/course_detail.html",
        course=course,
        share_url=_share_url(course),
        counts=queries.seat_counts([lesson.id for lesson in course.lessons]),
        can_register_online=course.can_register_online(
            payments.accepts_payments(course.institution_id)
        ),
        lesson_form=LessonForm(formdata=None),
        enrol_form=EnrolForm(formdata=None),
        enrolments=page.items,
        page=page,
        args=args,
        confirm_form=ConfirmForm(),
        now=utcnow(),
        **LABELS,
    )


@staff.get("/courses/<int:course_id>/qr.svg", defaults={"fmt": "svg"})
@staff.get("/courses/<int:course_id>/qr.png", defaults={"fmt": "png"})
def course_qr(course_id: int, fmt: str):
    course = get_or_404(Course, course_id)
    return qr_response(_share_url(course), fmt, f"course-{course.code}")


@staff.get("/courses/<int:course_id>/enrolments.csv")
@require_role(*MANAGERS)
def enrolments_export(course_id: int):
    course = get_or_404(Course, course_id)
    zone = current_institution().zone
    rows = (
        [
            e.student.name,
            e.student.grade or "",
            e.contact.parent_name,
            e.contact.phone,
            e.source.value,
            e.status.value,
            e.created_at.astimezone(zone).isoformat(),
        ]
        for e in db.session.scalars(queries.course_enrolments(course))
    )
    return csv_response(
        f"enrolments-{course.code}.csv",
        ["student", "grade", "parent", "phone", "source", "status", "enrolled_at"],
        rows,
    )


@staff.post("/courses/<int:course_id>/enrolments")
@require_role(*MANAGERS)
def enrol(course_id: int):
    course = get_or_404(Course, course_id)
    form = EnrolForm()
    if form.validate_on_submit():
        try:
            enrolment = services.enrol_by_staff(
                current_institution(), course, form.details(), current_user
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("%(name)s is enrolled.", name=enrolment.student.name), "success")
            return redirect(url_for(".course_detail", course_id=course.id))
    for field in form:
        for error in field.errors:
            flash(f"{field.label.text}: {error}", "error")
    return redirect(url_for(".course_detail", course_id=course.id))


# --- lessons (staff) -------------------------------------------------------------------------


def _lesson_values(form: LessonForm) -> dict:
    return {
        "title": form.title.data or None,
        "starts_at": from_local(form.starts_at.data, current_institution().zone),
        "duration_minutes": form.duration_minutes.data,
        "place": form.place.data or None,
        "online_url": form.online_url.data or None,
        "replay_url": form.replay_url.data or None,
    }


@staff.post("/courses/<int:course_id>/lessons")
@require_role(*MANAGERS)
def lesson_add(course_id: int):
    course = get_or_404(Course, course_id)
    form = LessonForm()
    if form.validate_on_submit():
        try:
            services.add_lesson(course, **_lesson_values(form))
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Lesson added."), "success")
            return redirect(url_for(".course_detail", course_id=course.id))
    return render_template(
        "courses/lesson_form.html", form=form, course=course, lesson=None
    ), form_status(form)


@staff.route("/lessons/<int:lesson_id>/edit", methods=["GET", "POST"])
@require_role(*MANAGERS)
def lesson_edit(lesson_id: int):
    lesson = get_or_404(Lesson, lesson_id)
    form = LessonForm(obj=lesson)
    if request.method == "GET":
        form.starts_at.data = to_local(lesson.starts_at, current_institution().zone)
    if form.validate_on_submit():
        try:
            services.update_lesson(
                current_institution(), lesson, current_user, **_lesson_values(form)
            )
        except ServiceError as error:
            report(error, form)
        else:
            db.session.commit()
            flash(_("Lesson saved. Families with a seat have been told of any change."), "success")
            return redirect(url_for(".course_detail", course_id=lesson.course_id))
    return render_template(
        "courses/lesson_form.html",
        form=form,
        course=lesson.course,
        lesson=lesson,
        confirm_form=ConfirmForm(),
    ), form_status(form)


@staff.post("/lessons/<int:lesson_id>/cancel")
@require_role(*MANAGERS)
def lesson_cancel(lesson_id: int):
    lesson = get_or_404(Lesson, lesson_id)
    if ConfirmForm().validate_on_submit():
        services.cancel_lesson(current_institution(), lesson, current_user)
        db.session.commit()
        flash(_("Lesson cancelled. Families with a seat have been told."), "success")
    return redirect(url_for(".course_detail", course_id=lesson.course_id))


@staff.route("/lessons/<int:lesson_id>/roll-call", methods=["GET", "POST"])
def roll_call(lesson_id: int):
    """Attendance on a phone: one row per child, three big buttons, one save."""
    lesson = get_or_404(Lesson, lesson_id)
    seats = queries.roll(lesson)
    form = ConfirmForm()
    if form.validate_on_submit():
        marked = 0
        for seat in seats:
            value = request.form.get(f"seat-{seat.id}", "")
            if value in set(Attendance):
                services.mark_attendance(seat, Attendance(value), current_user)
                marked += 1
        db.session.commit()
        flash(_("Attendance saved for %(n)s children.", n=marked), "success")
        return redirect(url_for(".roll_call", lesson_id=lesson.id))
    return render_template(
        "courses/roll_call.html",
        lesson=lesson,
        seats=seats,
        waitlist=queries.waitlist(lesson),
        form=form,
        attendances=list(Attendance),
        **LABELS,
    )


@staff.post("/lessons/<int:lesson_id>/roll-call/all-present")
def roll_call_all_present(lesson_id: int):
    """Every child with a seat marked present in one go; the roll call then changes the
    few who did not come."""
    lesson = get_or_404(Lesson, lesson_id)
    if ConfirmForm().validate_on_submit():
        marked = services.mark_all_present(lesson, current_user)
        db.session.commit()
        flash(
            ngettext(
                "%(num)s child marked present.", "All %(num)s children marked present.", marked
            ),
            "success",
        )
    return redirect(url_for(".roll_call", lesson_id=lesson.id))


@staff.post("/seats/<int:seat_id>/cancel")
@require_role(*MANAGERS)
def seat_cancel(seat_id: int):
    seat = get_or_404(Seat, seat_id)
    if ConfirmForm().validate_on_submit():
        promoted = services.cancel_seat(current_institution(), seat, current_user)
        db.session.commit()
        flash(_("Seat cancelled."), "success")
        if promoted is not None:
            flash(
                _("%(name)s got the seat from the waitlist.", name=promoted.enrolment.student.name),
                "success",
            )
    return redirect(url_for(".roll_call", lesson_id=seat.lesson_id))


@staff.get("/absences")
def absences():
    """Children marked absent in the last 30 days: families to call back."""
    now = utcnow()
    return render_template(
        "courses/absences.html",
        seats=queries.absences(current_institution(), now - timedelta(days=30), now),
    )


# --- the public course page ------------------------------------------------------------------


def _course_key() -> str:
    return f"course-page:{current_institution().id}:{request.view_args.get('code', '')}"


@public.route("/c/<code>", methods=["GET", "POST"])
@limiter.limit(lambda: current_app.config["REGISTER_LIMIT_PER_IP"], methods=["POST"])
@limiter.limit(
    lambda: current_app.config["FORM_LIMIT_PER_FORM"], methods=["POST"], key_func=_course_key
)
@pagecache.cached(
    lambda code: [("course", code)], count=lambda _visit, code: services.view_of(code)
)
def course_page(code: str):
    """The course and its registration form; a paid course is paid for here too."""
    institution = current_institution()
    course = queries.course_by_code(institution, code, with_lessons=True) or abort(404)
    now = utcnow()
    lessons = course.upcoming_lessons(now)
    if lessons:  # the first lesson leaves the page when it starts
        pagecache.fresh_until(lessons[0].starts_at)
    form = RegistrationForm() if course.is_free else checkout.prepare(PaidRegistrationForm())
    form.lessons.choices = [SelectChoice(lesson.id, "") for lesson in lessons]
    if request.method == "GET":
        form.lessons.data = [lesson.id for lesson in lessons]
    elif form.validate_on_submit():
        if form.is_bot():
            return bot_answer()
        response = _register(institution, course, form)
        if response is not None:
            return response
    return render_template(
        "courses/public_course.html",
        course=course,
        lessons=lessons,
        form=form,
        consent_text=_consent_text(institution),
        can_register=course.is_open
        and course.can_register_online(payments.accepts_payments(institution.id)),
        pay_minutes=int(payments.pay_window().total_seconds() // 60),
        **LABELS,
    ), form_status(form)


def _register(institution, course: Course, form: RegistrationForm):
    """Register, and for a paid course take the payment (the seats are held meanwhile).
    Returns a redirect, or None to show the form again with its errors."""
    details = form.details(consent_text=_consent_text(institution), locale=current_language())
    touch = Touch.from_request(SourceKind.COURSE, course.code, request.args, request.referrer)
    try:
        enrolment = services.register(institution, course, form.lessons.data or [], details, touch)
    except ServiceError as error:
        report(error, form)
        return None
    payment = None if course.is_free else queries.pending_payment(enrolment)
    done = url_for(".registered", code=course.code, enrolment_code=enrolment.code)
    if payment is None:
        db.session.commit()
        return redirect(done)
    # The held seats and their pending payment are committed before Stripe is called: a
    # crash in between leaves rows that the payment's deadline frees.
    page = checkout.commit_then_charge(
        payment, card=form.card(), title=course.title, next_path=done
    )
    if page is not None:  # the Payment Element: Stripe brings the parent back to `done`
        return redirect(page)
    if payment.status == PaymentStatus.FAILED:
        # Declined: the seats are released; the form is shown again to try another card.
        message = _(
            "The payment did not go through: %(reason)s Nothing is taken from your card.",
            reason=payment.failure_text,
        )
        report(ServiceError(message, field="card_number", code="declined"), form)
        return None
    return redirect(done)


def _consent_text(institution) -> str:
    return _(
        "I agree that %(name)s may contact me about this course and keep my details for it.",
        name=institution.name,
    )


def _enrolment_by_code(code: str, enrolment_code: str) -> Enrolment:
    course = queries.course_by_code(current_institution(), code) or abort(404)
    return queries.enrolment_by_code(course, enrolment_code) or abort(404)


@public.get("/c/<code>/r/<enrolment_code>")
def registered(code: str, enrolment_code: str):
    """The confirmation, at an unguessable address: it names the child and the lessons,
    and for a paid course what became of the payment."""
    enrolment = _enrolment_by_code(code, enrolment_code)
    seats = [s for s in enrolment.seats if s.status != SeatStatus.CANCELLED]
    payment = None if enrolment.course.is_free else queries.latest_payment(enrolment)
    offer = group_queries.offer_for_course(enrolment.course, enrolment.contact, utcnow())
    return render_template(
        "courses/public_registered.html",
        enrolment=enrolment,
        course=enrolment.course,
        group_offer=offer,
        seats=sorted(seats, key=lambda s: s.lesson.starts_at),
        positions={s.id: queries.waitlist_position(s) for s in seats},
        payment=payment,
        # Left the Payment Element before paying: the way back to it.
        pay_url=checkout.resume_url(payment, enrolment.course.title, request.path),
        **LABELS,
    )


@public.get("/c/<code>/r/<enrolment_code>/calendar.ics")
def calendar(code: str, enrolment_code: str):
    """The booked lessons as an iCalendar file for the phone's calendar."""
    enrolment = _enrolment_by_code(code, enrolment_code)
    institution = current_institution()
    ical = Calendar()
    ical.add("prodid", "-//Cohort//Lessons//EN")
    ical.add("version", "2.0")
    ical.add("method", "PUBLISH")
    for seat in enrolment.seats:
        if seat.status != SeatStatus.BOOKED or seat.lesson.is_cancelled:
            continue
        lesson = seat.lesson
        event = Event()
        event.add("uid", f"lesson-{lesson.id}-seat-{seat.id}@{institution.slug}.cohort")
        event.add("summary", f"{enrolment.course.title} · {enrolment.student.name}")
        event.add("dtstart", lesson.starts_at)
        event.add("dtend", lesson.ends_at)
        event.add("dtstamp", utcnow())
        event.add("sequence", lesson.schedule_version)
        if lesson.place or lesson.online_url:
            event.add("location", lesson.place or lesson.online_url)
        ical.add_component(event)
    response = current_app.response_class(ical.to_ical(), mimetype="text/calendar")
    response.headers["Content-Disposition"] = f'attachment; filename="{code}.ics"'
    return response


@public.get("/c/<code>/poster.png")
@limits_reads
@limiter.limit(lambda: current_app.config["POSTER_LIMIT_PER_IP"])
def course_poster(code: str):
    """The course's share poster (app.sharing): the seats left, counted as its page counts
    them, of the fullest upcoming lesson (never more than any lesson has)."""
    course = queries.course_by_code(current_institution(), code, with_lessons=True) or abort(404)
    lessons = course.upcoming_lessons(utcnow())
    seats = min((course.capacity - lesson.taken_seats for lesson in lessons), default=0)
    if not lessons or not course.is_open:
        badge = None
    elif seats > 0:
        badge = ngettext("%(num)s seat left", "%(num)s seats left", seats)
    else:
        badge = None if course.is_free else _("Full")
    is_trial = course.kind == CourseKind.TRIAL
    return sharing.poster_response(
        current_institution(),
        link=_share_url(course),
        family_by_ref=loyalty_queries.contact_by_referral_code,
        title=course.title,
        subtitle=course.grade_range,
        price_label=_("Trial price") if is_trial and not course.is_free else None,
        price=_("Free") if course.is_free else format_money(course.price_amount, course.currency),
        badge=badge,
        cover_of=course,
    )


@public.get("/c/<code>/cover")
def course_cover(code: str):
    course = queries.course_by_code(current_institution(), code)
    if course is None or not course.has_cover:
        abort(404)
    return image_response(course.cover, course.cover_content_type, course.cover_updated_at)


@public.get("/c/<code>/teacher-qr")
def teacher_qr(code: str):
    """The QR code of the teacher's chat contact, the next step of the course's
    confirmation pages."""
    course = queries.course_by_code(current_institution(), code)
    if course is None or not course.has_teacher_qr:
        abort(404)
    return image_response(
        course.teacher_qr, course.teacher_qr_content_type, course.teacher_qr_updated_at
    )
