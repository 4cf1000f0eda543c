"""Courses and lessons, registrations and seats, the waitlist, attendance and reminders.

Seats are taken under a lock on their lesson's row, so a lesson never has more booked
seats than its course's capacity whatever the concurrency; the rest of a rush goes to the
waitlist in the order it arrived. Every reminder is an outbox row with the seat as its
topic: cancelling the seat, or moving the lesson, cancels the rows not yet sent.
"""

from __future__ import annotations

import logging

from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from app import counters, pagecache
from app.contacts import services as contacts
from app.contacts.models import Contact, EventKind, FamilyDetails, SourceKind, Student
from app.courses import queries
from app.courses.models import (
    TAKEN,
    Attendance,
    Course,
    CourseKind,
    Enrolment,
    EnrolmentSource,
    EnrolmentStatus,
    Lesson,
    LessonStatus,
    NextStep,
    Seat,
    SeatStatus,
)
from app.courses.queries import PURPOSE
from app.db import assign, created_in_this_transaction, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.groups import services as groups
from app.groups.models import JoinVia
from app.institutions.models import Institution
from app.leads import services as leads
from app.leads.models import Stage
from app.loyalty import services as loyalty
from app.loyalty.models import ReferralEvent
from app.notifications import services as notifications
from app.payments import services as payments
from app.payments.models import Payment, PaymentStatus

log = logging.getLogger(__name__)


VIEWS = "course_views"  # the app.counters kind of course page views


def view_of(code: str) -> counters.Count:
    """What a view of a course's public page adds to (in Redis; `add_views` writes it
    back)."""
    return counters.Count(VIEWS, code, ("total",))


@counters.writes_back(VIEWS)
def add_views(institution, counts: dict[str, dict[str, int]]) -> None:
    """Add counted page views ({course code: {"total": n}}) to the courses."""
    counters.add_view_totals(institution, Course, counts)


# --- courses and lessons (staff) -------------------------------------------------------------


def save_course(institution, course: Course | None, **values) -> Course:
    """Create a course (course=None) or update one; values are the editable columns."""
    if course is None:
        course = Course(institution_id=institution.id, currency=institution.currency)
        db.session.add(course)
    assign(course, values)
    db.session.flush()
    _page_changed(course)
    return course


def check_next_step(course: Course) -> None:
    """A course whose families are asked to add the teacher has the teacher's QR code."""
    if course.next_step == NextStep.TEACHER and not course.has_teacher_qr:
        raise ServiceError(
            _l("Upload the QR code of the teacher's contact, or choose another next step."),
            field="teacher_qr",
            code="no_teacher_qr",
        )


def _page_changed(course: Course) -> None:
    """The course's public page shows the change (app.pagecache)."""
    pagecache.changed(course.institution_id, "course", course.code)


def add_lesson(course: Course, **values) -> Lesson:
    if values["starts_at"] <= utcnow():
        raise ServiceError(_l("Choose a time in the future."), field="starts_at", code="past")
    lesson = Lesson(institution_id=course.institution_id, course_id=course.id, **values)
    db.session.add(lesson)
    db.session.flush()
    _page_changed(course)
    return lesson


def _locked_lesson(lesson_id: int) -> Lesson:
    # populate_existing: the caller may hold this lesson in memory already, and the locked
    # row's state must win over it.
    return db.session.scalar(
        select(Lesson)
        .where(Lesson.id == lesson_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def update_lesson(institution, lesson: Lesson, actor, **values) -> Lesson:
    """Change a lesson. If its time or place changed, the families with a seat are told,
    and their reminders are cancelled and scheduled again for the new time."""
    lesson = _locked_lesson(lesson.id)
    if lesson.is_cancelled:
        raise ServiceError(_l("This lesson is cancelled."), code="cancelled")
    old_starts_at = lesson.starts_at
    moved = values["starts_at"] != lesson.starts_at or values.get("place") != lesson.place
    if values["starts_at"] != lesson.starts_at and values["starts_at"] <= utcnow():
        raise ServiceError(_l("Choose a time in the future."), field="starts_at", code="past")
    for name, value in values.items():
        setattr(lesson, name, value)
    _page_changed(lesson.course)
    if not moved:
        db.session.flush()
        return lesson
    lesson.schedule_version += 1
    db.session.flush()
    for seat in queries.seats_of_lesson(lesson, SeatStatus.BOOKED, SeatStatus.WAITLISTED):
        notifications.cancel_topic(lesson.institution_id, seat.topic)
        if seat.status == SeatStatus.BOOKED:
            schedule_reminders(institution, seat)
        notifications.notify_contact(
            institution,
            seat.enrolment.contact,
            "lesson_moved",
            {**_lesson_context(seat), "old_starts_at": old_starts_at.isoformat()},
            dedupe_key=f"lesson-moved:{seat.id}:v{lesson.schedule_version}",
        )
    log.info(
        "lesson %s moved from %s to %s by %s", lesson.id, old_starts_at, lesson.starts_at, actor
    )
    return lesson


def cancel_lesson(institution, lesson: Lesson, actor) -> None:
    """Cancel a lesson: no reminder goes out for it any more, and every family with a seat
    (or on its waitlist) is told."""
    lesson = _locked_lesson(lesson.id)
    if lesson.is_cancelled:
        return
    lesson.status = LessonStatus.CANCELLED
    _page_changed(lesson.course)
    db.session.flush()
    for seat in queries.seats_of_lesson(lesson, SeatStatus.BOOKED, SeatStatus.WAITLISTED):
        notifications.cancel_topic(lesson.institution_id, seat.topic)
        notifications.notify_contact(
            institution,
            seat.enrolment.contact,
            "lesson_cancelled",
            _lesson_context(seat),
            dedupe_key=f"lesson-cancelled:{seat.id}",
        )
    log.info("lesson %s cancelled by %s", lesson.id, actor)


# --- registration ----------------------------------------------------------------------------


def register(
    institution,
    course: Course,
    lesson_ids: list[int],
    details: FamilyDetails,
    touch: contacts.Touch,
) -> Enrolment:
    """Register a child for lessons of a course from its public page.

    Finds or creates the family (contacts service) and enrols the child (once per course).
    For a free course, takes a seat in each chosen lesson or a place on its waitlist,
    moves the family's lead to trial_booked (opening one if they have none), schedules the
    reminders and confirms; registering again for the same lessons changes nothing. For a
    paid course, holds a seat in each chosen lesson for a pending payment instead (see
    `hold_seats`): the caller commits, then takes the payment.
    """
    now = utcnow()
    if not course.is_open:
        raise ServiceError(_l("This course is not taking registrations."), code="closed")
    if not course.is_free and not payments.accepts_payments(institution.id):
        raise ServiceError(_l("Online payment is not available yet."), code="payments_off")
    bookable = {lesson.id: lesson for lesson in course.upcoming_lessons(now)}
    chosen = sorted({lesson_id for lesson_id in lesson_ids if lesson_id in bookable})
    if not chosen:
        raise ServiceError(_l("Choose at least one lesson."), field="lessons", code="no_lesson")
    contact, student = contacts.find_family(institution, details, touch)
    if not course.is_free and not created_in_this_transaction(contact):
        # The family's row lock serialises their own attempts: one payment at a time.
        db.session.scalar(select(Contact.id).where(Contact.id == contact.id).with_for_update())
    lead = None
    if course.kind == CourseKind.TRIAL or not course.is_free:
        booked_now = course.kind == CourseKind.TRIAL and course.is_free
        lead = leads.ensure_lead(
            institution,
            contact,
            source=touch.utm_source or "course",
            opened_at=Stage.TRIAL_BOOKED if booked_now else Stage.NEW,
        )
    enrolment = enrol(institution, course, contact, student, EnrolmentSource.FORM)
    if not course.is_free:
        hold_seats(institution, enrolment, chosen)
        return enrolment
    if course.kind == CourseKind.TRIAL:
        leads.advance_lead(contact, Stage.TRIAL_BOOKED, lead=lead)
    # The group the confirmation offers is read before the seats' claims lock their lessons.
    group = groups.offer_context(institution, course, contact)
    seats = take_seats(institution, enrolment, [bookable[lesson_id] for lesson_id in chosen])
    _confirm(
        institution, enrolment, seats if created_in_this_transaction(enrolment) else None, group
    )
    if course.kind == CourseKind.TRIAL:
        loyalty.referral_after_commit(
            institution, contact, ReferralEvent.REGISTRATION, f"course:{course.code}"
        )
    return enrolment


def hold_seats(institution, enrolment: Enrolment, lesson_ids: list[int]) -> Payment:
    """Hold a seat in each lesson for a paid registration, with the pending payment that
    will pay for them (the caller holds the family's row lock). Every lesson must have a
    free seat: nobody pays for a waitlist place. The seats are booked when the payment
    succeeds, and freed if it fails or is not paid by its deadline (payments own it)."""
    course = enrolment.course
    if queries.pending_payment(enrolment) is not None:
        raise ServiceError(
            _l("A payment for this child is already in progress. Finish it or try again later."),
            code="payment_in_progress",
        )
    existing = queries.seats_of(enrolment.id, lesson_ids)
    wanted = _not_held(existing, lesson_ids)
    if not wanted:
        raise ServiceError(
            _l("%(name)s is already registered for these lessons.", name=enrolment.student.name),
            field="lessons",
            code="already_registered",
        )
    payment = payments.start_payment(
        institution,
        purpose=PURPOSE,
        reference=enrolment.id,
        amount=course.price_amount,
        contact_id=enrolment.contact_id,
        manual_capture=False,
    )
    # The seats last, claimed in one conditional UPDATE of their lessons' counters: the
    # lessons' rows are locked from here to the commit only (in id order: no deadlock
    # between two rushes).
    free = _claim_seats(wanted, course.capacity)
    for lesson_id in wanted:
        lesson = db.session.get(Lesson, lesson_id)
        if lesson_id not in free:
            raise ServiceError(
                _l(
                    "%(when)s is full. Please choose another lesson.",
                    when=format_datetime(lesson.starts_at, "short"),
                ),
                field="lessons",
                code="full",
            )
        seat = _occupy(enrolment, lesson, existing.get(lesson_id), SeatStatus.HELD)
        seat.payment_id = payment.id
    db.session.flush()
    return payment


@payments.on_transition(PURPOSE)
def _on_payment(payment: Payment, previous: PaymentStatus, cause: str) -> None:
    """Book the held seats when the money arrives; free them when it will not."""
    seats = list(
        db.session.scalars(
            select(Seat)
            .where(Seat.payment_id == payment.id, Seat.status == SeatStatus.HELD)
            .order_by(Seat.lesson_id)
            .execution_options(populate_existing=True)
        )
    )
    institution = db.session.get(Institution, payment.institution_id)
    if payment.status == PaymentStatus.CAPTURED:
        if seats:
            _book_paid(institution, seats)
        else:  # the seats were given up (by staff) before the money arrived
            payments.refund(payment, "paid for seats no longer held")
    elif payment.status in (PaymentStatus.FAILED, PaymentStatus.RELEASED):
        for seat in seats:
            _free_held(institution, seat)
    db.session.flush()


def _book_paid(institution, seats: list[Seat]) -> None:
    enrolment = seats[0].enrolment
    course = enrolment.course
    for seat in seats:
        seat.status = SeatStatus.BOOKED
    db.session.flush()
    for seat in seats:
        schedule_reminders(institution, seat)
    contacts.add_event(
        enrolment.contact, EventKind.COURSE, {"action": "paid", "course": course.title}
    )
    stage = Stage.TRIAL_BOOKED if course.kind == CourseKind.TRIAL else Stage.ENROLLED
    leads.advance_lead(enrolment.contact, stage)
    groups.join_course_groups(institution, course, enrolment.contact, JoinVia.COURSE)
    _confirm(institution, enrolment)
    source = f"course:{course.code}"
    if course.kind == CourseKind.TRIAL:
        loyalty.referral_after_commit(
            institution, enrolment.contact, ReferralEvent.REGISTRATION, source
        )
    loyalty.referral_after_commit(institution, enrolment.contact, ReferralEvent.PAYMENT, source)


def _free_held(institution, seat: Seat) -> None:
    """A held seat whose payment will not come goes back to the lesson."""
    lesson = _locked_lesson(seat.lesson_id)
    db.session.refresh(seat)
    if seat.status == SeatStatus.HELD:
        _give_up(institution, lesson, seat)


def enrol(
    institution, course: Course, contact: Contact, student: Student, source: EnrolmentSource
) -> Enrolment:
    """The student's enrolment in the course, created (or reactivated) if needed."""
    existing = None
    if not created_in_this_transaction(student):  # a new child has no enrolment yet
        existing = queries.enrolment_of(course, student.id)
    if existing is None:
        # Nothing pending bears on the (course, student) key, so it stays pending: the
        # family's timeline rows of this request go in one INSERT later, not one per flush.
        with db.session.no_autoflush:
            enrolment = db.insert_unless_exists(
                Enrolment,
                {
                    "institution_id": institution.id,
                    "course_id": course.id,
                    "contact_id": contact.id,
                    "student_id": student.id,
                    "source": source,
                },
                ["course_id", "student_id"],
            )
        if enrolment is not None:
            set_committed_value(enrolment, "seats", [])
            contacts.add_event(
                contact, EventKind.COURSE, {"action": "enrolled", "course": course.title}
            )
            return enrolment
        existing = queries.enrolment_of(course, student.id)  # enrolled by a concurrent request
    if existing.status == EnrolmentStatus.CANCELLED:
        existing.status = EnrolmentStatus.ACTIVE
        existing.cancelled_at = None
    return existing


def take_seats(institution, enrolment: Enrolment, lessons: list[Lesson]) -> list[Seat]:
    """The enrolment's seat in each lesson if one is free, else a waitlist place (a place
    it already holds stays as it is), and the reminders of the booked ones.

    Seats last: the lessons' counter rows stay locked from their claim to the commit, so
    everything pending is written first, then every lesson is claimed in one statement
    (`_claim_seats`) and the new seats are written in one INSERT right after."""
    db.session.flush()
    in_order = sorted(lessons, key=lambda each: each.id)
    lessons_by_id = {lesson.id: lesson for lesson in in_order}
    held = {}
    if not created_in_this_transaction(enrolment):  # a new enrolment has no seats yet
        held = queries.seats_of(enrolment.id, list(lessons_by_id))
    wanted = _not_held(held, list(lessons_by_id))
    with db.session.no_autoflush:  # the claims first, then the new seats in one INSERT
        free = _claim_seats(wanted, enrolment.course.capacity)
        for lesson_id in wanted:
            status = SeatStatus.BOOKED if lesson_id in free else SeatStatus.WAITLISTED
            lesson = lessons_by_id[lesson_id]
            held[lesson_id] = _occupy(enrolment, lesson, held.get(lesson_id), status)
    db.session.flush()
    seats = [held[lesson.id] for lesson in in_order]
    for seat in seats:
        if seat.status == SeatStatus.BOOKED:
            schedule_reminders(institution, seat)
    return seats


def _not_held(held: dict[int, Seat], lesson_ids: list[int]) -> list[int]:
    """The lessons (of `lesson_ids`, in their order) where the enrolment has no place, or
    one it gave up; `held`: its places by lesson id."""
    return [
        lesson_id
        for lesson_id in lesson_ids
        if lesson_id not in held or held[lesson_id].status == SeatStatus.CANCELLED
    ]


def _claim_seats(lesson_ids: list[int], capacity: int) -> set[int]:
    """One more taken seat in each of the lessons that has one free, in one conditional
    UPDATE of their counters (which is what makes capacity hold): the ids of those
    claimed. The rows are locked in id order (the sub-select's FOR UPDATE ... ORDER BY),
    so two registrations for the same lessons cannot deadlock."""
    if not lesson_ids:
        return set()
    free = (
        select(Lesson.id)
        .where(Lesson.id.in_(lesson_ids), Lesson.taken_seats < capacity)
        .order_by(Lesson.id)
        .with_for_update()
    )
    return set(
        db.session.scalars(
            update(Lesson)
            .where(Lesson.id.in_(free), Lesson.taken_seats < capacity)
            .values(taken_seats=Lesson.taken_seats + 1)
            .returning(Lesson.id)
            .execution_options(synchronize_session=False)
        )
    )


def _free_seat(lesson: Lesson) -> None:
    db.session.execute(
        update(Lesson)
        .where(Lesson.id == lesson.id, Lesson.taken_seats > 0)
        .values(taken_seats=Lesson.taken_seats - 1)
        .execution_options(synchronize_session=False)
    )


def _occupy(enrolment: Enrolment, lesson: Lesson, seat: Seat | None, status: SeatStatus) -> Seat:
    """The enrolment's place in the lesson in `status`: a new seat row, or the given-up one
    taken again (queued from now)."""
    if seat is None:
        seat = Seat(
            institution_id=enrolment.institution_id,
            lesson_id=lesson.id,
            enrolment_id=enrolment.id,
            status=status,
        )
        db.session.add(seat)
    else:
        seat.status, seat.queued_at, seat.cancelled_at = status, utcnow(), None
    _page_changed(lesson.course)
    return seat


def schedule_reminders(institution, seat: Seat) -> None:
    """Queue the seat's reminders at the institution's offsets. The dedupe key carries the
    lesson's schedule version, so scheduling twice queues nothing new, and a moved lesson
    gets new messages rather than the cancelled ones back."""
    lesson = seat.lesson
    settings = notifications.reminder_terms(institution.id)
    for key, send_at in notifications.reminder_times(
        settings, lesson.starts_at, institution.zone, utcnow()
    ):
        notifications.notify_contact(
            institution,
            seat.enrolment.contact,
            "lesson_reminder",
            _lesson_context(seat),
            dedupe_key=f"reminder:{seat.id}:v{lesson.schedule_version}:{key}",
            send_at=send_at,
            topic=seat.topic,
            channels_=list(settings.channels),
        )


def _lesson_context(seat: Seat) -> dict:
    lesson = seat.lesson
    return {
        "child_name": seat.enrolment.student.name,
        "course_title": lesson.course.title,
        "lesson_title": lesson.title or "",
        "starts_at": lesson.starts_at.isoformat(),
        "place": lesson.place or "",
        "online_url": lesson.online_url or "",
    }


def _confirm(
    institution, enrolment: Enrolment, seats: list[Seat] | None = None, group: dict | None = None
) -> None:
    """Tell the family which lessons they have a seat in (`seats`: those of this
    registration, else every seat of the enrolment), and offer them the course's group
    (`group`: its message variables, else read here; a paid course has put the family in
    its class groups already)."""
    if seats is None:
        db.session.expire(enrolment, ["seats"])  # with the ones just taken
        seats = enrolment.seats
    booked = [seat for seat in seats if seat.status == SeatStatus.BOOKED]
    if not booked:
        return  # waitlisted only: the family hears from us when a place frees up
    first = min(booked, key=lambda seat: seat.lesson.starts_at)
    lessons = [
        {"starts_at": seat.lesson.starts_at.isoformat(), "place": seat.lesson.place or ""}
        for seat in sorted(booked, key=lambda seat: seat.lesson.starts_at)
    ]
    seat_ids = "-".join(str(seat.id) for seat in sorted(booked, key=lambda seat: seat.id))
    if group is None:
        group = groups.offer_context(institution, enrolment.course, enrolment.contact)
    notifications.notify_contact(
        institution,
        enrolment.contact,
        "registration_confirmed",
        {**_lesson_context(first), "lessons": lessons, **group},
        dedupe_key=f"registered:{enrolment.id}:{seat_ids}",
    )


# --- cancelling and the waitlist -------------------------------------------------------------


def cancel_seat(institution, seat: Seat, actor=None) -> Seat | None:
    """Give up a seat or a waitlist place: its reminders are cancelled, and a freed seat
    goes to the first family on the waitlist, who are told. Returns the promoted seat."""
    lesson = _locked_lesson(seat.lesson_id)
    db.session.refresh(seat)
    if seat.status == SeatStatus.CANCELLED:
        return None
    contacts.add_event(
        seat.enrolment.contact,
        EventKind.COURSE,
        {"action": "cancelled", "course": lesson.course.title, "at": lesson.starts_at.isoformat()},
        actor,
    )
    return _give_up(institution, lesson, seat)


def _give_up(institution, lesson: Lesson, seat: Seat) -> Seat | None:
    """Cancel the seat (under its lesson's lock) with its unsent reminders, and the
    enrolment with its last seat; a seat that counted against capacity goes to the first
    family waiting. Returns the promoted seat."""
    took_a_seat = seat.status in TAKEN
    seat.status = SeatStatus.CANCELLED
    seat.cancelled_at = utcnow()
    if took_a_seat:
        _free_seat(lesson)
    _page_changed(lesson.course)
    notifications.cancel_topic(seat.institution_id, seat.topic)
    enrolment = seat.enrolment
    if all(other.status == SeatStatus.CANCELLED for other in enrolment.seats):
        enrolment.status = EnrolmentStatus.CANCELLED
        enrolment.cancelled_at = utcnow()
    db.session.flush()
    if not took_a_seat or not lesson.is_bookable(utcnow()):
        return None
    return _promote_first_waiting(institution, lesson)


def _promote_first_waiting(institution, lesson: Lesson) -> Seat | None:
    """The freed seat to the family first on the waitlist (under the lesson's lock, taken
    by the caller, so the seat cannot go to a newcomer first)."""
    waiting = queries.seats_of_lesson(lesson, SeatStatus.WAITLISTED)
    if not waiting or lesson.id not in _claim_seats([lesson.id], lesson.course.capacity):
        return None
    seat = waiting[0]
    seat.status = SeatStatus.BOOKED
    db.session.flush()
    schedule_reminders(institution, seat)
    notifications.notify_contact(
        institution,
        seat.enrolment.contact,
        "waitlist_promoted",
        _lesson_context(seat),
        dedupe_key=f"promoted:{seat.id}:{seat.queued_at.timestamp():.0f}",
    )
    log.info("seat %s promoted from the waitlist of lesson %s", seat.id, lesson.id)
    return seat


# --- staff: enrolling by hand and attendance -------------------------------------------------


def enrol_by_staff(institution, course: Course, details: FamilyDetails, actor) -> Enrolment:
    """Enrol a child by hand (a family who paid at the desk): the contact is found or
    created, and the child takes a seat, or a waitlist place, in every upcoming lesson."""
    touch = contacts.Touch(kind=SourceKind.STAFF, ref=course.code)
    contact, student = contacts.find_family(institution, details, touch, actor)
    return enrol_in_upcoming(institution, course, contact, student, EnrolmentSource.STAFF)


def enrol_in_upcoming(
    institution, course: Course, contact: Contact, student: Student, source: EnrolmentSource
) -> Enrolment:
    """Enrol the child and give them a seat, or a waitlist place, in every upcoming lesson
    (a family who paid at the desk, or won a group buy)."""
    enrolment = enrol(institution, course, contact, student, source)
    take_seats(institution, enrolment, course.upcoming_lessons(utcnow()))
    return enrolment


def mark_attendance(seat: Seat, attendance: Attendance, actor) -> None:
    """Record whether the child came. A trial student who came moves the family's lead to
    trial_attended."""
    if seat.status != SeatStatus.BOOKED:
        raise ServiceError(_l("Only booked seats have attendance."), code="not_booked")
    if seat.attendance == attendance:
        return
    seat.attendance = attendance
    seat.attendance_marked_at = utcnow()
    seat.attendance_marked_by_id = actor.id if actor else None
    lesson, contact = seat.lesson, seat.enrolment.contact
    contacts.add_event(
        contact,
        EventKind.COURSE,
        {
            "action": attendance.value,
            "course": lesson.course.title,
            "at": lesson.starts_at.isoformat(),
        },
        actor,
    )
    if attendance != Attendance.ABSENT and lesson.course.kind == CourseKind.TRIAL:
        leads.advance_lead(contact, Stage.TRIAL_ATTENDED, actor)
    db.session.flush()


def mark_all_present(lesson: Lesson, actor) -> int:
    """Mark every child with a booked seat in the lesson present (the roll call's "all
    present": most children come, and the few who did not are changed one by one after).
    Every booked seat, also one marked late or absent before, as the button says. Returns
    how many children were marked."""
    seats = queries.roll(lesson)
    for seat in seats:
        mark_attendance(seat, Attendance.PRESENT, actor)
    return len(seats)
