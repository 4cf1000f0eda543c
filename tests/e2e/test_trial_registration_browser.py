"""A parent registers for a trial course on a phone, then opens their page from the link in
the confirmation e-mail and sees the lesson there."""

from __future__ import annotations

from sqlalchemy import func, select

from app.courses.models import Enrolment, Seat, SeatStatus
from app.extensions import db
from app.jobs import run_burst
from tests.factories import make_course
from tests.helpers import link_in


def test_parent_registers_for_a_trial_and_opens_their_page_from_the_email(
    live_server, phone, institution, mail_server, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    course = make_course(institution, capacity=3)

    phone.goto(f"{live_server}/{institution.slug}/c/{course.code}?utm_source=wechat")
    assert phone.title().startswith("Maths Olympiad trial")
    assert "剩余3个名额" in phone.inner_text(".lessons")
    assert "月" in phone.inner_text(".lesson-when")  # "11月26日 周四 19:00"
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.fill("#parent_name", "王芳")
    phone.fill("#phone", "138 0013 8000")
    phone.fill("#student_name", "乐乐")
    phone.fill("#email", "wang.fang@example.com")
    phone.click("button[type=submit]")  # forgot the consent box
    assert "请勾选同意" in phone.inner_text(".has-error")
    assert phone.input_value("#student_name") == "乐乐"

    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/r/**")
    assert "乐乐报名成功" in phone.inner_text("h1")
    assert phone.get_attribute("a[href$='calendar.ics']", "href")
    phone.screenshot(path=str(tmp_path / "registered.png"), full_page=True)

    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(Enrolment)) == 1
    assert db.session.scalar(select(Seat.status)) == SeatStatus.BOOKED

    run_burst()  # the worker sends the confirmation
    (mail,) = mail_server.to("wang.fang@example.com")
    assert "乐乐已成功报名" in mail["Subject"]
    phone.goto(live_server + link_in(mail))
    phone.wait_for_url("**/me")
    assert "王芳，您好" in phone.inner_text("h1")
    assert "Maths Olympiad trial" in phone.inner_text("main")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(tmp_path / "parent-page.png"), full_page=True)

    # Cancelling the trial place from the page, with its confirmation step.
    phone.click("summary:has-text('取消此名额')")
    phone.click(".confirm-box button:has-text('确定')")
    assert "您的名额已取消" in phone.inner_text("main")
    db.session.expire_all()
    assert db.session.scalar(select(Seat.status)) == SeatStatus.CANCELLED
