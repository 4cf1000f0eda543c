"""Courses for tests, and a family registering from the public page."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta

from sqlalchemy import select

from app.courses import services
from app.courses.models import Course, CourseKind, Lesson
from app.extensions import db
from app.notifications.models import Channel, OutboxMessage, OutboxStatus
from app.tenancy import bind_institution, unbind_institution

FAMILY = {
    "parent_name": "Wang Fang",
    "phone": "138 0013 8000",
    "email": "wang.fang@example.com",
    "student_name": "Leo",
    "student_grade": "Grade 3",
    "consent": "y",
}


def local_time(institution, days: int, at: time = time(19, 0)) -> datetime:
    """`at` on the day `days` from today, in the institution's time zone, as UTC: lessons
    at a chosen hour, so that no test depends on the hour it runs at."""
    today = datetime.now(institution.zone).date()
    return datetime.combine(today + timedelta(days=days), at, tzinfo=institution.zone).astimezone(
        UTC
    )


def make_course(
    institution,
    starts: list[datetime] | None = None,
    capacity: int = 10,
    kind: CourseKind = CourseKind.TRIAL,
    price_amount: int = 0,
) -> Course:
    """A committed course with a lesson at each of `starts` (default: one in three days,
    at 19:00 local time)."""
    bind_institution(institution)
    course = services.save_course(
        institution,
        None,
        title="Maths Olympiad trial",
        kind=kind,
        capacity=capacity,
        price_amount=price_amount,
    )
    for starts_at in starts or [local_time(institution, days=3)]:
        services.add_lesson(course, starts_at=starts_at, duration_minutes=60, place="Room 3")
    unbind_institution()
    db.session.commit()
    return course


def register(client, institution, course: Course, lessons: list[Lesson] | None = None, **family):
    data = {**FAMILY, **family}
    data["lessons"] = [lesson.id for lesson in (course.lessons if lessons is None else lessons)]
    return client.post(f"/{institution.slug}/c/{course.code}", data=data)


def reminders(institution, channel: Channel = Channel.EMAIL, status=OutboxStatus.PENDING):
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.institution_id == institution.id,
                OutboxMessage.template == "lesson_reminder",
                OutboxMessage.channel == channel,
                OutboxMessage.status == status,
            )
            .order_by(OutboxMessage.send_at)
        )
    )
