"""Parallel registrations against a real database never overfill a lesson."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app.courses.models import Seat, SeatStatus
from app.db import utcnow
from app.extensions import db
from tests.factories import make_course
from tests.helpers import FAMILY, committed_data, committed_institution, run_in_parallel


@pytest.mark.committed
def test_twenty_parallel_registrations_for_five_seats_give_five_seats_and_fifteen_waitlist(app):
    with committed_data() as made:
        institution = committed_institution(made)
        course = make_course(institution, starts=[utcnow() + timedelta(days=2)], capacity=5)
        url = f"/{institution.slug}/c/{course.code}"
        lesson_id = course.lessons[0].id
        db.session.remove()  # on SQLite an open transaction would hold the lock

        def register(n: int) -> int:
            data = {
                **FAMILY,
                "phone": f"1390013{n:04d}",
                "student_name": f"Child {n}",
                "lessons": [lesson_id],
            }
            client = app.test_client()
            return client.post(
                url, data=data, environ_base={"REMOTE_ADDR": f"10.30.0.{n}"}
            ).status_code

        results = run_in_parallel(20, register)

        assert results == [302] * 20
        counts = dict(
            db.session.execute(
                select(Seat.status, func.count())
                .where(Seat.lesson_id == lesson_id)
                .group_by(Seat.status)
            ).all()
        )
        assert counts == {SeatStatus.BOOKED: 5, SeatStatus.WAITLISTED: 15}


@pytest.mark.committed
def test_ten_parallel_paid_registrations_for_two_seats_charge_exactly_two_families(app):
    from app.payments.models import Payment, PaymentStatus
    from tests.helpers import VISA

    with committed_data() as made:
        institution = committed_institution(made)
        course = make_course(
            institution, starts=[utcnow() + timedelta(days=2)], capacity=2, price_amount=9900
        )
        url = f"/{institution.slug}/c/{course.code}"
        lesson_id = course.lessons[0].id
        db.session.remove()

        def register(n: int) -> int:
            data = {
                **FAMILY,
                "phone": f"1390014{n:04d}",
                "student_name": f"Child {n}",
                "lessons": [lesson_id],
                "card_number": VISA,
                "card_expiry": "12/30",
                "card_cvc": "123",
            }
            client = app.test_client()
            return client.post(
                url, data=data, environ_base={"REMOTE_ADDR": f"10.31.0.{n}"}
            ).status_code

        results = run_in_parallel(10, register)

        assert sorted(results) == [302] * 2 + [422] * 8
        statuses = db.session.scalars(select(Seat.status).where(Seat.lesson_id == lesson_id)).all()
        payments = db.session.scalars(
            select(Payment.status).where(Payment.institution_id == institution.id)
        ).all()
        assert statuses == [SeatStatus.BOOKED] * 2  # the losers wrote nothing
        assert payments == [PaymentStatus.CAPTURED] * 2  # and were never charged
