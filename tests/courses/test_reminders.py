"""Lesson reminders: at the right instants in the institution's time zone, moved with the
lesson, gone with a cancelled seat, and delivered exactly once whatever happens to Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import func, select

from app.contacts.models import Contact
from app.courses.models import Enrolment, Seat, SeatStatus
from app.extensions import db, redis_connection
from app.jobs import run_burst
from app.notifications.models import Channel, OutboxMessage, OutboxStatus
from tests.factories import make_course
from tests.helpers import login, register, reminders

# 1 December 2026, 10:00 in Shanghai (UTC+8); the lesson is on 3 December at 19:00 there.
NOW = datetime(2026, 12, 1, 2, 0, tzinfo=UTC)
LESSON = datetime(2026, 12, 3, 11, 0, tzinfo=UTC)


def count(model, institution) -> int:
    return db.session.scalar(
        select(func.count()).select_from(model).where(model.institution_id == institution.id)
    )


def test_registration_schedules_three_reminders_at_the_right_utc_instants(client, institution):
    with time_machine.travel(NOW, tick=False):
        course = make_course(institution, starts=[LESSON])
        response = register(client, institution, course)

    assert response.status_code == 302
    assert count(Contact, institution) == 1
    assert count(Enrolment, institution) == 1
    assert [m.send_at for m in reminders(institution)] == [
        datetime(2026, 12, 3, 0, 0, tzinfo=UTC),  # 08:00 in Shanghai on the lesson's day
        datetime(2026, 12, 3, 10, 0, tzinfo=UTC),  # one hour before
        datetime(2026, 12, 3, 10, 50, tzinfo=UTC),  # ten minutes before
    ]
    # The same three appear on the family's page when their time comes.
    assert len(reminders(institution, Channel.INAPP)) == 3
    # Registering again (a double tap) changes nothing.
    with time_machine.travel(NOW, tick=False):
        register(client, institution, course)
    assert count(Enrolment, institution) == 1
    assert len(reminders(institution)) == 3


def test_new_reminder_settings_apply_to_the_next_registration(client, institution, owner):
    """The settings a registration schedules by are kept in the web process's memory; staff
    saving new ones makes the next family's reminders follow them at once."""
    with time_machine.travel(NOW, tick=False):
        course = make_course(institution, starts=[LESSON])
        register(client, institution, course)
        staff = client.application.test_client()
        login(staff, owner)
        saved = staff.post(
            f"/staff/{institution.slug}/notifications/reminders",
            data={"morning_time": "07:30", "minutes_before": "120", "channels": ["email"]},
        )
        assert saved.status_code == 302
        register(client.application.test_client(), institution, course, phone="13900139000")

    by_family = {}
    for message in reminders(institution):
        by_family.setdefault(message.contact_id, []).append(message.send_at)
    assert sorted(by_family.values()) == [
        [
            datetime(2026, 12, 2, 23, 30, tzinfo=UTC),  # 07:30 in Shanghai, the new settings
            datetime(2026, 12, 3, 9, 0, tzinfo=UTC),  # two hours before
        ],
        [
            datetime(2026, 12, 3, 0, 0, tzinfo=UTC),  # the first family's, as they were
            datetime(2026, 12, 3, 10, 0, tzinfo=UTC),
            datetime(2026, 12, 3, 10, 50, tzinfo=UTC),
        ],
    ]
    # and on e-mail alone: nothing on the family's page for the second family
    assert len(reminders(institution, Channel.INAPP)) == 3


def test_moving_the_lesson_moves_the_reminders(client, institution, owner):
    with time_machine.travel(NOW, tick=False):
        course = make_course(institution, starts=[LESSON])
        register(client, institution, course)
        login(client, owner)
        lesson = course.lessons[0]
        response = client.post(
            f"/staff/{institution.slug}/lessons/{lesson.id}/edit",
            data={"starts_at": "2026-12-04T09:30", "duration_minutes": 60, "place": "Room 3"},
        )
    assert response.status_code == 302

    assert [m.send_at for m in reminders(institution)] == [
        datetime(2026, 12, 4, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 4, 0, 30, tzinfo=UTC),
        datetime(2026, 12, 4, 1, 20, tzinfo=UTC),
    ]
    old = reminders(institution, status=OutboxStatus.CANCELLED)
    assert len(old) == 3 and all(m.send_at < datetime(2026, 12, 4, tzinfo=UTC) for m in old)
    moved = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.template == "lesson_moved", OutboxMessage.channel == Channel.EMAIL
        )
    ).all()
    assert len(moved) == 1

    # Nothing goes out at the old times; each new reminder goes out once.
    redis_connection.client.flushall()
    for instant in [
        datetime(2026, 12, 3, 0, 1, tzinfo=UTC),
        datetime(2026, 12, 3, 10, 51, tzinfo=UTC),
    ]:
        with time_machine.travel(instant, tick=False):
            run_burst()
    assert _sent_reminders() == 0
    with time_machine.travel(datetime(2026, 12, 4, 1, 21, tzinfo=UTC), tick=False):
        run_burst()
    assert _sent_reminders() == 3


def _sent_reminders() -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(OutboxMessage)
        .where(
            OutboxMessage.template == "lesson_reminder",
            OutboxMessage.channel == Channel.EMAIL,
            OutboxMessage.status == OutboxStatus.SENT,
        )
    )


def test_cancelling_the_seat_removes_its_reminders(client, institution, owner, mail_server):
    with time_machine.travel(NOW, tick=False):
        course = make_course(institution, starts=[LESSON])
        register(client, institution, course)
        seat = db.session.scalar(select(Seat))
        login(client, owner)
        response = client.post(f"/staff/{institution.slug}/seats/{seat.id}/cancel")
    assert response.status_code == 302

    assert reminders(institution) == []
    assert len(reminders(institution, status=OutboxStatus.CANCELLED)) == 3
    db.session.refresh(seat)
    assert seat.status == SeatStatus.CANCELLED
    # At those times the deliverer finds them cancelled, and sends nothing.
    with time_machine.travel(LESSON, tick=False):
        run_burst()
    assert not [m for m in mail_server.to("wang.fang@example.com") if "Reminder" in m["Subject"]]


def test_reminders_survive_a_redis_flushall_and_are_delivered_exactly_once(
    client, institution, mail_server
):
    with time_machine.travel(NOW, tick=False):
        course = make_course(institution, starts=[LESSON])
        register(client, institution, course)
        run_burst()  # the confirmation
    assert len(mail_server.to("wang.fang@example.com")) == 1

    redis_connection.client.flushall()  # every scheduled job and wake-up is gone

    for message in reminders(institution):
        with time_machine.travel(message.send_at + timedelta(seconds=5), tick=False):
            run_burst()
            run_burst()  # a second deliverer looking at the same moment sends nothing more
    with time_machine.travel(LESSON, tick=False):
        run_burst()

    subjects = [m["Subject"] for m in mail_server.to("wang.fang@example.com")]
    assert len(subjects) == 4, subjects
    assert sum(subject.startswith("Reminder") for subject in subjects) == 3
