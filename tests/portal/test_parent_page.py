"""The parent's own page: opened from any message's link or a one-time link, no password."""

from __future__ import annotations

import re
from datetime import timedelta
from email.utils import parsedate_to_datetime

import time_machine
from sqlalchemy import select

from app.courses.models import Enrolment, Seat, SeatStatus
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxMessage, OutboxStatus
from app.payments.models import Payment, PaymentStatus
from tests.factories import local_time, make_course, make_group_buy
from tests.helpers import link_in, open_team, register


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


def test_the_page_shows_the_week_day_by_day_then_the_rest_teams_and_receipts(
    client, institution, mail_server
):
    """Lessons of the next 7 days under their day (today, tomorrow, then dates), the later
    ones folded; the family's group-buy teams with what is still needed and a countdown;
    its payments with a receipt; messages whose links are short words, not tokens."""
    course = make_course(institution, starts=[local_time(institution, d) for d in (1, 3, 20)])
    register(client, institution, course)
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1, phone="138 0013 8000", student_name="Leo")
    run_burst()
    client.get(link_in(mail_server.to("wang.fang@example.com")[0]))

    page = client.get(f"/{institution.slug}/me").get_data(as_text=True)
    week = page[page.index('id="lessons"') : page.index("more lesson after that")]
    payment = db.session.scalar(select(Payment))
    receipt = client.get(f"/{institution.slug}/me/payments/{payment.id}/receipt")
    stranger = client.application.test_client()

    assert "Tomorrow · " in week and week.count("19:00") == 2
    assert "1 more lesson after that" in page
    assert "Group buys" not in week and "2 more families needed" in page
    assert 'class="countdown"' in page[page.index('id="teams"') :]
    assert "Payments and receipts" in page and "Group buy" in page
    assert "http://localhost" not in re.sub(r'href="[^"]*"', "", page)  # no raw links
    assert "Open the link" in page
    assert payment.status == PaymentStatus.AUTHORISED  # a hold has no receipt yet
    assert receipt.status_code == 404
    assert stranger.get(f"/{institution.slug}/me/payments/{payment.id}/receipt").status_code == 404


def test_a_one_time_link_opens_the_page_in_one_tap_and_the_phone_stays_signed_in(
    client, institution, mail_server
):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    mail_server.clear()
    client.post(f"/{institution.slug}/me", data={"phone": "13800138000", "channel": "email"})
    run_burst()
    path = link_in(mail_server.to("wang.fang@example.com")[0])

    opened = client.get(path).get_data(as_text=True)
    with time_machine.travel(utcnow(), tick=False):  # the cookie's expiry against this instant
        signed_in = client.post(path)
        now = utcnow()

    assert "data-send-at-once" in opened and "open_page.js" in opened  # sent by the page
    cookie = signed_in.headers["Set-Cookie"]
    expires = parsedate_to_datetime(re.search(r"Expires=([^;]+)", cookie)[1])
    assert timedelta(days=29) < expires - now <= timedelta(days=30)
