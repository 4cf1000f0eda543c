"""A parent on a phone: the flash sale's page counts down to the start on the server's
clock, the buy button opens when it gets there, the parent takes a seat, pays for it with
the test card (once the worker wrote the order, which the page waits for) and sees the
child enrolled."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from app.campaigns.models import FlashOrder, FlashOrderStatus
from app.courses.models import Enrolment
from app.db import utcnow
from app.extensions import db
from app.jobs import run_burst
from tests.factories import make_flash_sale


def test_the_countdown_reaches_the_start_then_the_parent_buys_and_sees_the_enrolment(
    live_server, phone, institution, tmp_path
):
    institution.locale = "zh_CN"
    db.session.commit()
    sale = make_flash_sale(
        institution,
        stock=3,
        starts_at=utcnow() + timedelta(seconds=4),
        ends_at=utcnow() + timedelta(hours=1),
    )
    starts_at, code = sale.starts_at, sale.code

    phone.goto(f"{live_server}/{institution.slug}/fs/{code}?utm_source=wechat")
    assert "¥99.00" in phone.inner_text(".gb-prices")
    assert "距开始" in phone.inner_text(".flash-state")
    assert phone.inner_text(".countdown").startswith("00:00:0")  # seconds away, server time
    assert phone.is_disabled("button.flash-buy")
    assert phone.is_visible("#remind summary")
    assert len(phone.input_value("input[name=attempt]")) == 36  # made by the page's script
    assert phone.get_attribute("meta[property='og:title']", "content").startswith("秒杀")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.fill("#parent_name", "王芳")
    phone.fill("#phone", "138 0013 8000")
    phone.fill("#student_name", "乐乐")
    phone.check("input[name=consent]")
    phone.screenshot(path=str(tmp_path / "countdown.png"), full_page=True)

    phone.wait_for_selector("button.flash-buy:enabled", timeout=15_000)
    assert utcnow() >= starts_at  # the button opened on the server's clock, not before
    assert phone.inner_text(".countdown") == "开抢啦"
    assert phone.is_hidden("#remind")
    assert "立即抢购" in phone.inner_text("button.flash-buy")
    with phone.expect_navigation():
        phone.click("button.flash-buy")

    assert "抢到名额了！请在10分钟内支付" in phone.inner_text(".flashes")
    assert "正在生成订单" in phone.inner_text(".my-place")  # the writer job has not run yet
    phone.screenshot(path=str(tmp_path / "being-written.png"), full_page=True)
    run_burst()  # the worker's writer job; the page reloads itself and shows the order
    phone.wait_for_selector("button.flash-pay", timeout=10_000)
    assert "剩余支付时间" in phone.inner_text(".my-place")
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.screenshot(path=str(tmp_path / "to-pay.png"), full_page=True)
    with phone.expect_navigation():
        phone.click("button.flash-pay")  # the test card, filled in

    assert "抢到了！乐乐已报名" in phone.inner_text(".flashes")
    assert "已报名" in phone.inner_text(".my-place")
    assert "已支付" in phone.inner_text(".my-place")
    assert "剩余2个名额" in phone.inner_text(".flash-state")
    phone.screenshot(path=str(tmp_path / "bought.png"), full_page=True)
    db.session.expire_all()
    (order,) = db.session.scalars(select(FlashOrder).where(FlashOrder.flash_sale_id == sale.id))
    assert order.status == FlashOrderStatus.PAID
    assert db.session.get(Enrolment, order.enrolment_id).student.name == "乐乐"
