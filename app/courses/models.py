from __future__ import annotations

import enum
import secrets
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.accounts.models import User
from app.contacts.models import Contact, Student
from app.db import Base, TenantScoped, parent_id, str_enum, utcnow


def new_code() -> str:
    return secrets.token_urlsafe(8)


class CourseKind(enum.StrEnum):
    TRIAL = "trial"
    REGULAR = "regular"


KIND_LABELS = {CourseKind.TRIAL: _l("Trial"), CourseKind.REGULAR: _l("Regular")}


class NextStep(enum.StrEnum):
    """What a family is asked to do once its child has a seat (the success pages of a
    registration, a paid course, a filled team and a flash sale): join the course's group,
    add the teacher (the QR code of their chat contact, uploaded by the institution), or
    read the institution's message."""

    GROUP = "group"
    TEACHER = "teacher"
    MESSAGE = "message"


NEXT_STEP_LABELS = {
    NextStep.GROUP: _l("Join the course's group (when it has one)"),
    NextStep.TEACHER: _l("Add the teacher's contact (a QR code you upload)"),
    NextStep.MESSAGE: _l("Read a message from you"),
}


class Course(TenantScoped, Base):
    """A course parents can register for from its public page at /<institution>/c/<code>."""

    __tablename__ = "courses"
    __table_args__ = (UniqueConstraint("institution_id", "code"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    kind: Mapped[CourseKind] = mapped_column(str_enum(CourseKind))
    title: Mapped[str] = mapped_column(String(120))
    subject: Mapped[str | None] = mapped_column(String(60))
    grade_range: Mapped[str | None] = mapped_column(String(60))
    description: Mapped[str | None] = mapped_column(Text)
    cover: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    cover_content_type: Mapped[str | None] = mapped_column(String(32))
    cover_updated_at: Mapped[datetime | None]
    teacher_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    price_amount: Mapped[int] = mapped_column(default=0)  # minor units
    currency: Mapped[str] = mapped_column(String(3))
    capacity: Mapped[int]  # seats per lesson
    is_open: Mapped[bool] = mapped_column(default=True)  # taking registrations
    view_count: Mapped[int] = mapped_column(default=0)  # written back from Redis
    next_step: Mapped[NextStep] = mapped_column(str_enum(NextStep), default=NextStep.GROUP)
    next_step_text: Mapped[str | None] = mapped_column(Text)  # shown with any next step
    teacher_qr: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    teacher_qr_content_type: Mapped[str | None] = mapped_column(String(32))
    teacher_qr_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    teacher: Mapped[User | None] = relationship()
    lessons: Mapped[list[Lesson]] = relationship(
        back_populates="course",
        order_by="Lesson.starts_at",
        cascade="all, delete-orphan",
        foreign_keys="Lesson.course_id",
    )

    @property
    def is_free(self) -> bool:
        return self.price_amount == 0

    @property
    def has_cover(self) -> bool:
        return self.cover_updated_at is not None

    @property
    def has_teacher_qr(self) -> bool:
        return self.teacher_qr_updated_at is not None

    def upcoming_lessons(self, now: datetime) -> list[Lesson]:
        return [lesson for lesson in self.lessons if lesson.is_bookable(now)]

    def can_register_online(self, payments_ready: bool) -> bool:
        """Free courses always; paid ones once the institution takes payments online."""
        return self.is_free or payments_ready


class LessonStatus(enum.StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


class Lesson(TenantScoped, Base):
    __tablename__ = "lessons"
    __table_args__ = (Index("ix_lessons_course_starts", "course_id", "starts_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    course_id: Mapped[int] = parent_id("courses", ondelete="CASCADE")
    title: Mapped[str | None] = mapped_column(String(120))
    starts_at: Mapped[datetime]
    duration_minutes: Mapped[int]
    place: Mapped[str | None] = mapped_column(String(200))
    online_url: Mapped[str | None] = mapped_column(String(500))
    replay_url: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[LessonStatus] = mapped_column(
        str_enum(LessonStatus), default=LessonStatus.SCHEDULED
    )
    # Booked and held seats, kept by conditional UPDATEs as seats are taken and given up
    # (app.courses.services._claim_seats): the count capacity is checked against.
    taken_seats: Mapped[int] = mapped_column(default=0)
    # Goes up each time the lesson moves: reminders carry it in their dedupe keys, so the
    # reminders for the new time are new messages even if the lesson moves back.
    schedule_version: Mapped[int] = mapped_column(default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    course: Mapped[Course] = relationship(back_populates="lessons", foreign_keys=[course_id])

    @property
    def ends_at(self) -> datetime:
        return self.starts_at + timedelta(minutes=self.duration_minutes)

    @property
    def is_cancelled(self) -> bool:
        return self.status == LessonStatus.CANCELLED

    def is_bookable(self, now: datetime) -> bool:
        return not self.is_cancelled and self.starts_at > now


class EnrolmentSource(enum.StrEnum):
    FORM = "form"  # the course page's registration form
    CAMPAIGN = "campaign"
    STAFF = "staff"


class EnrolmentStatus(enum.StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    CANCELLED = "cancelled"


SOURCE_LABELS = {
    EnrolmentSource.FORM: _l("Registration"),
    EnrolmentSource.CAMPAIGN: _l("Campaign"),
    EnrolmentSource.STAFF: _l("Staff"),
}
ENROLMENT_STATUS_LABELS = {
    EnrolmentStatus.ACTIVE: _l("Active"),
    EnrolmentStatus.COMPLETED: _l("Completed"),
    EnrolmentStatus.CANCELLED: _l("Cancelled"),
}


class Enrolment(TenantScoped, Base):
    """A student taking a course; one per student and course."""

    __tablename__ = "enrolments"
    __table_args__ = (
        UniqueConstraint("course_id", "student_id"),
        UniqueConstraint("institution_id", "code"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The confirmation page's unguessable address.
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    course_id: Mapped[int] = parent_id("courses", ondelete="CASCADE")
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    student_id: Mapped[int] = parent_id("students", ondelete="CASCADE")
    source: Mapped[EnrolmentSource] = mapped_column(str_enum(EnrolmentSource))
    status: Mapped[EnrolmentStatus] = mapped_column(
        str_enum(EnrolmentStatus), default=EnrolmentStatus.ACTIVE
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    cancelled_at: Mapped[datetime | None]

    course: Mapped[Course] = relationship(foreign_keys=[course_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])
    student: Mapped[Student] = relationship(foreign_keys=[student_id])
    seats: Mapped[list[Seat]] = relationship(
        back_populates="enrolment", order_by="Seat.id", foreign_keys="Seat.enrolment_id"
    )


class SeatStatus(enum.StrEnum):
    BOOKED = "booked"
    HELD = "held"  # kept for a paid registration while its payment is in progress
    WAITLISTED = "waitlisted"
    CANCELLED = "cancelled"


class Attendance(enum.StrEnum):
    PRESENT = "present"
    LATE = "late"
    ABSENT = "absent"


TAKEN = (SeatStatus.BOOKED, SeatStatus.HELD)  # the seats that count against capacity
SEAT_STATUS_LABELS = {
    SeatStatus.BOOKED: _l("Booked"),
    SeatStatus.HELD: _l("Awaiting payment"),
    SeatStatus.WAITLISTED: _l("Waitlist"),
    SeatStatus.CANCELLED: _l("Cancelled"),
}
ATTENDANCE_LABELS = {
    Attendance.PRESENT: _l("Present"),
    Attendance.LATE: _l("Late"),
    Attendance.ABSENT: _l("Absent"),
}


class Seat(TenantScoped, Base):
    """An enrolment's place in one lesson: booked, held while its payment is in progress,
    waiting for a place, or given up. Booked and held seats both count against capacity."""

    __tablename__ = "seats"
    __table_args__ = (
        UniqueConstraint("lesson_id", "enrolment_id"),
        Index("ix_seats_lesson_status", "lesson_id", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    lesson_id: Mapped[int] = parent_id("lessons", ondelete="CASCADE")
    enrolment_id: Mapped[int] = parent_id("enrolments", ondelete="CASCADE", index=True)
    status: Mapped[SeatStatus] = mapped_column(str_enum(SeatStatus))
    # The payment that holds (then paid for) the seat, for a paid course.
    payment_id: Mapped[int | None] = parent_id("payments", index=True)
    # Waiting order: the time the family joined the waitlist (or took the seat).
    queued_at: Mapped[datetime] = mapped_column(default=utcnow)
    attendance: Mapped[Attendance | None] = mapped_column(str_enum(Attendance))
    attendance_marked_at: Mapped[datetime | None]
    attendance_marked_by_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL")
    )
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    lesson: Mapped[Lesson] = relationship(foreign_keys=[lesson_id])
    enrolment: Mapped[Enrolment] = relationship(back_populates="seats", foreign_keys=[enrolment_id])

    @property
    def topic(self) -> str:
        """The outbox topic of this seat's messages (reminders to cancel with it)."""
        return f"seat:{self.id}"

    def parent_can_cancel(self, now: datetime) -> bool:
        """Parents cancel their own trial seats online, until the lesson starts."""
        return (
            self.status in (SeatStatus.BOOKED, SeatStatus.WAITLISTED)
            and self.lesson.course.kind == CourseKind.TRIAL
            and self.lesson.is_bookable(now)
        )
