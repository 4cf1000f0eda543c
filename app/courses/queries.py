from __future__ import annotations

from datetime import datetime

from sqlalchemy import Select, case, func, select
from sqlalchemy.orm import joinedload

from app.contacts.models import Contact, Student
from app.courses.models import (
    Attendance,
    Course,
    Enrolment,
    EnrolmentStatus,
    Lesson,
    LessonStatus,
    Seat,
    SeatStatus,
)
from app.db import scoped_select
from app.extensions import db
from app.payments.models import Payment

PURPOSE = "course_registration"  # the purpose of a paid registration's payments


def course_by_code(institution, code: str, with_lessons: bool = False) -> Course | None:
    """The course; `with_lessons`, with its lessons in the same statement (its page, every
    registration and its poster go through them)."""
    statement = select(Course).where(Course.institution_id == institution.id, Course.code == code)
    if with_lessons:
        statement = statement.options(joinedload(Course.lessons))
    return db.session.scalars(statement).unique().one_or_none()


def all_courses(institution) -> list[Course]:
    return list(
        db.session.scalars(scoped_select(Course, institution).order_by(Course.created_at.desc()))
    )


def seat_counts(lesson_ids: list[int]) -> dict[int, dict[str, int]]:
    """{lesson id: {"booked": n, "held": n, "waitlisted": n, "taken": n}} for these
    lessons; "held" seats wait for a payment in progress, and "taken" is booked + held."""
    counts = {
        lesson_id: {"booked": 0, "held": 0, "waitlisted": 0, "taken": 0} for lesson_id in lesson_ids
    }
    if not lesson_ids:
        return counts
    rows = db.session.execute(
        select(Seat.lesson_id, Seat.status, func.count())
        .where(Seat.lesson_id.in_(lesson_ids), Seat.status != SeatStatus.CANCELLED)
        .group_by(Seat.lesson_id, Seat.status)
    )
    for lesson_id, status, count in rows:
        counts[lesson_id][status.value] = count
    for count in counts.values():
        count["taken"] = count["booked"] + count["held"]
    return counts


def next_lessons(course_ids: list[int], now: datetime) -> dict[int, Lesson]:
    """The next scheduled lesson of each course."""
    lessons = db.session.scalars(
        select(Lesson)
        .where(
            Lesson.course_id.in_(course_ids),
            Lesson.starts_at > now,
            Lesson.status == LessonStatus.SCHEDULED,
        )
        .order_by(Lesson.starts_at)
    )
    found: dict[int, Lesson] = {}
    for lesson in lessons:
        found.setdefault(lesson.course_id, lesson)
    return found


def enrolment_counts(course_ids: list[int]) -> dict[int, int]:
    if not course_ids:
        return {}
    rows = db.session.execute(
        select(Enrolment.course_id, func.count())
        .where(Enrolment.course_id.in_(course_ids), Enrolment.status == EnrolmentStatus.ACTIVE)
        .group_by(Enrolment.course_id)
    )
    return dict(rows.all())


def course_enrolments(course: Course) -> Select:
    return (
        select(Enrolment)
        .where(Enrolment.institution_id == course.institution_id, Enrolment.course_id == course.id)
        .options(joinedload(Enrolment.contact), joinedload(Enrolment.student))
        .order_by(Enrolment.created_at.desc(), Enrolment.id.desc())
    )


def contact_enrolments(contact: Contact) -> list[Enrolment]:
    return list(
        db.session.scalars(
            select(Enrolment)
            .where(Enrolment.contact_id == contact.id)
            .options(joinedload(Enrolment.course), joinedload(Enrolment.student))
            .order_by(Enrolment.created_at.desc())
        )
    )


def roll(lesson: Lesson) -> list[Seat]:
    """The booked seats of a lesson, in the order the children's names sort."""
    return list(
        db.session.scalars(
            select(Seat)
            .join(Enrolment, Seat.enrolment_id == Enrolment.id)
            .join(Student, Enrolment.student_id == Student.id)
            .where(Seat.lesson_id == lesson.id, Seat.status == SeatStatus.BOOKED)
            .order_by(Student.name)
        )
    )


def waitlist(lesson: Lesson) -> list[Seat]:
    return list(
        db.session.scalars(
            select(Seat)
            .where(Seat.lesson_id == lesson.id, Seat.status == SeatStatus.WAITLISTED)
            .order_by(Seat.queued_at, Seat.id)
        )
    )


def absences(institution, since: datetime, now: datetime) -> list[Seat]:
    """Booked seats marked absent in lessons since `since`, latest lesson first: the
    families to call back."""
    return list(
        db.session.scalars(
            scoped_select(Seat, institution)
            .join(Lesson, Seat.lesson_id == Lesson.id)
            .where(
                Seat.attendance == Attendance.ABSENT,
                Lesson.starts_at >= since,
                Lesson.starts_at <= now,
            )
            .order_by(Lesson.starts_at.desc())
        )
    )


def family_seats(contact: Contact) -> list[Seat]:
    """A family's seats and waitlist places, soonest lesson first."""
    return list(
        db.session.scalars(
            select(Seat)
            .join(Enrolment, Seat.enrolment_id == Enrolment.id)
            .join(Lesson, Seat.lesson_id == Lesson.id)
            .where(Enrolment.contact_id == contact.id, Seat.status != SeatStatus.CANCELLED)
            .order_by(case((Lesson.status == LessonStatus.CANCELLED, 1), else_=0), Lesson.starts_at)
        )
    )


def seats_of_lesson(lesson: Lesson, *statuses: SeatStatus) -> list[Seat]:
    """The lesson's seats in these states, in the order the families queued."""
    return list(
        db.session.scalars(
            select(Seat)
            .where(Seat.lesson_id == lesson.id, Seat.status.in_(statuses))
            .order_by(Seat.queued_at, Seat.id)
        )
    )


def waitlist_position(seat: Seat) -> int | None:
    """1 for the first family waiting for the lesson, and so on; None if not waiting."""
    if seat.status != SeatStatus.WAITLISTED:
        return None
    ahead = db.session.scalar(
        select(func.count())
        .select_from(Seat)
        .where(
            Seat.lesson_id == seat.lesson_id,
            Seat.status == SeatStatus.WAITLISTED,
            (Seat.queued_at < seat.queued_at)
            | ((Seat.queued_at == seat.queued_at) & (Seat.id < seat.id)),
        )
    )
    return ahead + 1


def pending_payment(enrolment: Enrolment) -> Payment | None:
    """The payment the enrolment's held seats wait for, if any."""
    return db.session.scalar(
        select(Payment)
        .join(Seat, Seat.payment_id == Payment.id)
        .where(Seat.enrolment_id == enrolment.id, Seat.status == SeatStatus.HELD)
        .limit(1)
    )


def latest_payment(enrolment: Enrolment) -> Payment | None:
    """The enrolment's last registration payment, whatever became of it."""
    return db.session.scalar(
        select(Payment)
        .where(
            Payment.institution_id == enrolment.institution_id,
            Payment.purpose == PURPOSE,
            Payment.reference == enrolment.id,
        )
        .order_by(Payment.id.desc())
        .limit(1)
    )


def enrolment_of(course: Course, student_id: int) -> Enrolment | None:
    return db.session.scalar(
        select(Enrolment).where(
            Enrolment.course_id == course.id, Enrolment.student_id == student_id
        )
    )


def enrolment_by_id(enrolment_id: int | None) -> Enrolment | None:
    """The enrolment a campaign's place or order made (None before it is paid)."""
    return None if enrolment_id is None else db.session.get(Enrolment, enrolment_id)


def enrolment_by_code(course: Course, code: str) -> Enrolment | None:
    return db.session.scalar(
        select(Enrolment).where(Enrolment.course_id == course.id, Enrolment.code == code)
    )


def seats_of(enrolment_id: int, lesson_ids: list[int]) -> dict[int, Seat]:
    """The enrolment's places in these lessons, by lesson id."""
    seats = db.session.scalars(
        select(Seat).where(Seat.enrolment_id == enrolment_id, Seat.lesson_id.in_(lesson_ids))
    )
    return {seat.lesson_id: seat for seat in seats}


def family_seat(contact: Contact, seat_id: int) -> Seat | None:
    """A seat of this family, or None (another family's seat is not theirs to see)."""
    seat = db.session.get(Seat, seat_id)
    if seat is None or seat.enrolment.contact_id != contact.id:
        return None
    return seat


def course_titles(institution_id: int, codes: list[str]) -> dict[str, str]:
    """{course code: title} of the institution's courses among `codes`."""
    if not codes:
        return {}
    rows = db.session.execute(
        select(Course.code, Course.title).where(
            Course.institution_id == institution_id, Course.code.in_(codes)
        )
    )
    return dict(rows.all())
