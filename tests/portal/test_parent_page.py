"""The parent's own page: opened from any message's link or a one-time link, no password."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from app.courses.models import Enrolment, Seat, SeatStatus
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxMessage, OutboxStatus
from tests.factories import make_course
from tests.helpers import link_in, register


def test_the_link_in_the_confirmation_opens_the_familys_page(client, institution, mail_server):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")

    response = client.get(link_in(mail))
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Hello Wang Fang" in page and "Maths Olympiad trial" in page and "Leo" in page
    assert "Leo is registered for Maths Olympiad trial" in page  # the in-app message


def test_a_family_cancels_its_trial_seat_and_its_reminders_go(client, institution, mail_server):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    client.get(link_in(mail_server.to("wang.fang@example.com")[0]))
    seat = db.session.scalar(select(Seat))

    response = client.post(f"/{institution.slug}/me/seats/{seat.id}/cancel")
    assert response.status_code == 302
    db.session.refresh(seat)
    assert seat.status == SeatStatus.CANCELLED
    pending = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.topic == seat.topic, OutboxMessage.status == OutboxStatus.PENDING
        )
    ).all()
    assert pending == []


def test_a_family_cannot_see_or_cancel_another_familys_seat(client, institution, mail_server):
    course = make_course(institution)
    register(client, institution, course)
    register(
        client, institution, course, phone="13900139000", email="li@example.com", student_name="Mia"
    )
    run_burst()
    mia = db.session.scalar(
        select(Seat).where(Seat.enrolment.has(Enrolment.student.has(name="Mia")))
    )

    client.get(link_in(mail_server.to("wang.fang@example.com")[0]))  # Leo's family signs in
    assert client.post(f"/{institution.slug}/me/seats/{mia.id}/cancel").status_code == 404
    assert "Mia" not in client.get(f"/{institution.slug}/me").get_data(as_text=True)
    db.session.refresh(mia)
    assert mia.status == SeatStatus.BOOKED


def test_a_one_time_link_by_email_works_once(client, institution, mail_server):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    mail_server.clear()

    response = client.post(
        f"/{institution.slug}/me", data={"phone": "+86 138 0013 8000", "channel": "sms"}
    )
    assert response.status_code == 200  # no SMS gateway here: it falls back to e-mail
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    path = link_in(mail)

    assert "Open my page" in client.get(path).get_data(as_text=True)  # a GET spends nothing
    assert client.post(path).status_code == 302
    assert "Hello Wang Fang" in client.get(f"/{institution.slug}/me").get_data(as_text=True)
    stranger = client.application.test_client()
    assert stranger.post(path).status_code == 400  # spent


def test_an_unknown_phone_gets_the_same_answer_and_no_message(client, institution, mail_server):
    response = client.post(
        f"/{institution.slug}/me", data={"phone": "13700137000", "channel": "email"}
    )
    assert response.status_code == 200
    assert "If this number is registered with us" in response.get_data(as_text=True)
    run_burst()
    assert mail_server.messages == []


def test_links_expire_and_forged_links_are_refused(client, institution, mail_server):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    path = link_in(mail_server.to("wang.fang@example.com")[0])
    assert client.get(path + "x").status_code == 400
    with time_machine.travel(utcnow() + timedelta(days=31)):
        assert client.get(path).status_code == 400
