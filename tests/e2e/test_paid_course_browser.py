"""A parent buys a paid course on a phone: a declined card first (the form comes back with
the seat freed), then a good one (the seat is booked and the page says it is paid)."""

from __future__ import annotations

from sqlalchemy import select

from app.courses.models import Seat, SeatStatus
from app.extensions import db
from app.payments.models import Payment, PaymentStatus
from tests.factories import make_course
from tests.helpers import DECLINED


def test_parent_pays_for_a_course_after_a_declined_card(live_server, phone, institution, tmp_path):
    institution.locale = "zh_CN"
    db.session.commit()
    course = make_course(institution, capacity=3, price_amount=19900)

    phone.goto(f"{live_server}/{institution.slug}/c/{course.code}")
    assert "支付 ¥199.00 并报名" in phone.inner_text("button[type=submit]")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.fill("#parent_name", "王芳")
    phone.fill("#phone", "138 0013 8000")
    phone.fill("#student_name", "乐乐")
    phone.check("input[name=consent]")
    phone.fill("#card_number", DECLINED)
    phone.click("button[type=submit]")
    assert "支付未成功" in phone.inner_text(".has-error")
    assert "剩余3个名额" in phone.inner_text(".lessons")  # the held seat is free again
    assert phone.input_value("#student_name") == "乐乐"
    phone.screenshot(path=str(tmp_path / "declined.png"), full_page=True)

    phone.fill("#card_number", "4242 4242 4242 4242")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/r/**")
    assert "乐乐报名成功" in phone.inner_text("h1")
    assert "已支付 ¥199.00" in phone.inner_text(".flash-success")
    phone.screenshot(path=str(tmp_path / "paid.png"), full_page=True)

    db.session.expire_all()
    assert db.session.scalars(select(Payment.status).order_by(Payment.id)).all() == [
        PaymentStatus.FAILED,
        PaymentStatus.CAPTURED,
    ]
    assert db.session.scalar(select(Seat.status)) == SeatStatus.BOOKED
