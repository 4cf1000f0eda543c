"""Flash sales (秒杀) through their pages: staff create, publish, watch and export a sale;
parents see it count down, ask to be reminded, buy with the test card and see the
enrolment; a sold-out or ended sale is a clear page."""

from __future__ import annotations

import csv
import io
import re
import uuid
from datetime import timedelta

import time_machine
from sqlalchemy import select

from app import pagecache
from app.accounts.models import Role
from app.campaigns import services, stock, views
from app.campaigns.models import (
    FlashOrder,
    FlashOrderStatus,
    FlashReminder,
    FlashSale,
    FlashSaleStatus,
)
from app.contacts.models import FamilyDetails, SourceKind
from app.contacts.services import Touch
from app.courses.models import Enrolment
from app.db import utcnow
from app.extensions import db, redis_connection
from app.jobs import run_burst
from app.notifications.models import OutboxMessage
from app.pagecache import in_memory
from app.payments.models import Payment, PaymentStatus
from app.tenancy import bound
from tests.factories import make_course, make_flash_sale, make_institution, make_member
from tests.helpers import (
    DECLINED,
    count,
    flask_dispatches,
    login,
    parent,
    pay_like_stripe_js,
    statements,
    wait_until,
)


def page_of(institution, sale) -> str:
    return f"/{institution.slug}/fs/{sale.code}"


def buy(
    client,
    institution,
    sale,
    n: int = 1,
    *,
    pay: bool = True,
    run_writer: bool = True,
    **overrides,
):
    """Family n taps "buy", the writer job writes the order of a seat taken (unless not
    `run_writer`), and, if `pay`, the family pays for it with the card in `overrides` (the
    test card by default); the last answer."""
    data = {"attempt": uuid.uuid4().hex, **parent(n, **overrides)}
    address = {"REMOTE_ADDR": f"10.50.{n // 250}.{n % 250}"}
    taken = client.post(page_of(institution, sale), data=data, environ_base=address)
    if run_writer:
        run_burst()
    return pay_for(client, institution, sale, taken, n, **overrides) if pay else taken


def pay_for(client, institution, sale, taken, n: int = 1, **card):
    """Pay for the seat that the answer `taken` (to a buy) names, with the test card or
    `card`; `taken` itself if it names none."""
    order = re.search(r"#order-([\w-]+)$", taken.headers.get("Location", ""))
    if order is None:
        return taken
    return client.post(
        f"{page_of(institution, sale)}/orders/{order[1]}/pay",
        data=parent(n, **card),
        environ_base={"REMOTE_ADDR": f"10.50.{n // 250}.{n % 250}"},
    )


def orders(sale) -> list[FlashOrder]:
    return list(
        db.session.scalars(
            select(FlashOrder).where(FlashOrder.flash_sale_id == sale.id).order_by(FlashOrder.id)
        )
    )


def reserve_a_seat(institution, sale, phone: str = "13900139999") -> FlashOrder:
    """A family takes a seat and has not paid yet (as if it were on the checkout page)."""
    with bound(institution):
        seat = services.take_flash_seat(
            institution,
            sale,
            FamilyDetails(parent_name="P", phone=phone, student_name="C"),
            Touch(SourceKind.CAMPAIGN),
            uuid.uuid4().hex,
        )
        services.write_flash_orders(institution, sale.id)
        return db.session.scalar(select(FlashOrder).where(FlashOrder.code == seat.order_code))


def sale_form(course, **overrides) -> dict:
    return {
        "title": "Winter camp flash sale",
        "description": "Ten seats at ¥99.",
        "course_id": course.id,
        "list_price": "499",
        "sale_price": "99",
        "stock": "10",
        "starts_at": "2030-01-10T20:00",
        "ends_at": "2030-01-10T22:00",
        "per_family_limit": "1",
        "pay_minutes": "10",
        **overrides,
    }


# --- staff -----------------------------------------------------------------------------------


def test_staff_create_a_sale_and_bad_input_saves_nothing(client, institution, owner):
    course = make_course(institution)
    login(client, owner)
    new = f"/staff/{institution.slug}/flash-sales/new"

    form_page = client.get(new)
    bad = [
        client.post(new, data=sale_form(course, sale_price="599")),
        client.post(new, data=sale_form(course, ends_at="2030-01-10T19:00")),
        client.post(new, data=sale_form(course, title="", stock="0", pay_minutes="1")),
        client.post(new, data=sale_form(course, sale_price="NaN", course_id="999999")),
    ]

    assert form_page.status_code == 200 and 'name="pay_minutes"' in form_page.get_data(True)
    assert [response.status_code for response in bad] == [422] * 4
    assert "The sale price is above the list price." in bad[0].get_data(as_text=True)
    assert "The sale ends before it starts." in bad[1].get_data(as_text=True)
    assert count(FlashSale) == 0

    saved = client.post(new, data=sale_form(course))
    sale = db.session.scalars(select(FlashSale)).one()
    assert saved.status_code == 302
    assert saved.headers["Location"].endswith(f"/flash-sales/{sale.id}")
    assert (sale.list_price_amount, sale.sale_price_amount, sale.currency) == (49900, 9900, "CNY")
    assert (sale.stock, sale.per_family_limit, sale.pay_minutes) == (10, 1, 10)
    assert sale.starts_at.isoformat() == "2030-01-10T12:00:00+00:00"  # 20:00 in Shanghai
    assert sale.status == FlashSaleStatus.DRAFT
    assert client.get(page_of(institution, sale)).status_code == 404  # a draft is not public
    listing = client.get(f"/staff/{institution.slug}/flash-sales").get_data(as_text=True)
    assert "Winter camp flash sale" in listing and "Draft" in listing


def test_the_form_shows_one_seat_per_family_and_ten_minutes_to_pay_by_default(
    client, institution, owner
):
    login(client, owner)
    page = client.get(f"/staff/{institution.slug}/flash-sales/new").get_data(as_text=True)
    assert 'name="per_family_limit" required type="number" value="1"' in page
    assert 'name="pay_minutes" required type="number" value="10"' in page


def test_a_published_sales_price_is_locked_and_its_stock_never_below_sold_and_reserved(
    client, institution, owner
):
    sale = make_flash_sale(institution, stock=5)
    assert buy(client, institution, sale, 1).status_code == 302  # paid
    assert buy(client, institution, sale, 2, card_number=DECLINED).status_code == 302  # expired
    stranger = client.application.test_client()
    login(stranger, owner)
    edit = f"/staff/{institution.slug}/flash-sales/{sale.id}/edit"
    shown = stranger.get(edit).get_data(as_text=True)
    form = sale_form(
        sale.course,
        starts_at=re.search(r'name="starts_at"[^>]* value="([^"]+)"', shown).group(1),
        ends_at=re.search(r'name="ends_at"[^>]* value="([^"]+)"', shown).group(1),
    )

    cheaper = stranger.post(edit, data={**form, "sale_price": "49"})
    lower = stranger.post(edit, data={**form, "stock": "0"})
    below_sold = stranger.post(edit, data={**form, "stock": "1", "list_price": "499"})
    raised = stranger.post(edit, data={**form, "stock": "8"})

    assert cheaper.status_code == 422
    assert "prices, course and limit cannot change" in cheaper.get_data(as_text=True)
    assert lower.status_code == 422  # at least one seat
    db.session.refresh(sale)
    assert (sale.sold, sale.reserved) == (1, 0)
    assert below_sold.status_code == 302  # one sold: a stock of one is still possible
    assert raised.status_code == 302
    db.session.refresh(sale)
    assert (sale.sale_price_amount, sale.stock) == (9900, 8)
    # With one more seat waiting for payment, one sold and one waiting cannot become one.
    reserve_a_seat(institution, sale)
    too_low = stranger.post(edit, data={**form, "stock": "1"})
    assert too_low.status_code == 422
    assert "2 seats are sold or waiting for payment" in too_low.get_data(as_text=True)
    db.session.refresh(sale)
    assert sale.stock == 8


def test_staff_publish_then_end_a_sale_and_its_page_follows(client, institution, owner):
    sale = make_flash_sale(
        institution,
        publish=False,
        starts_at=utcnow() + timedelta(hours=1),
        ends_at=utcnow() + timedelta(hours=3),
    )
    login(client, owner)
    detail = f"/staff/{institution.slug}/flash-sales/{sale.id}"
    stranger = client.application.test_client()

    preview = client.get(f"{detail}/preview").get_data(as_text=True)
    assert "Preview: this is how parents see the page" in preview
    assert stranger.get(page_of(institution, sale)).status_code == 404
    assert stock.seats_left(sale.id) is None
    assert client.post(f"{detail}/publish").status_code == 302
    db.session.refresh(sale)
    assert sale.status == FlashSaleStatus.SCHEDULED
    assert stock.seats_left(sale.id) == sale.stock  # the counters, ready for the first tap
    page = stranger.get(page_of(institution, sale))
    assert page.status_code == 200 and "Starts in" in page.get_data(as_text=True)
    shown = client.get(detail).get_data(as_text=True)
    assert "Upcoming" in shown and f"/fs/{sale.code}" in shown
    assert client.get(f"{detail}/qr.svg").mimetype == "image/svg+xml"
    assert client.get(f"{detail}/qr.png").mimetype == "image/png"

    assert client.post(f"{detail}/end").status_code == 302
    db.session.refresh(sale)
    assert sale.status == FlashSaleStatus.ENDED
    ended = stranger.get(page_of(institution, sale))
    assert ended.status_code == 200 and "This sale has ended" in ended.get_data(as_text=True)


def test_staff_without_a_managers_role_cannot_change_a_sale(client, institution):
    sale = make_flash_sale(institution, publish=False)
    login(client, make_member(institution, Role.STAFF))
    base = f"/staff/{institution.slug}/flash-sales"

    assert client.get(f"{base}/{sale.id}").status_code == 200
    assert client.post(f"{base}/{sale.id}/publish").status_code == 403
    assert client.get(f"{base}/{sale.id}/edit").status_code == 403
    assert client.get(f"{base}/{sale.id}/orders.csv").status_code == 403
    db.session.refresh(sale)
    assert sale.status == FlashSaleStatus.DRAFT


def test_staff_see_live_figures_the_orders_and_export_them(client, institution, owner):
    sale = make_flash_sale(institution, stock=5)
    buy(client, institution, sale, 1, parent_name="Wang Fang", student_name="Leo")
    buy(client.application.test_client(), institution, sale, 2, card_number=DECLINED)
    login(client, owner)

    detail = client.get(f"/staff/{institution.slug}/flash-sales/{sale.id}").get_data(True)
    export = client.get(f"/staff/{institution.slug}/flash-sales/{sale.id}/orders.csv")
    listing = client.get(f"/staff/{institution.slug}/flash-sales").get_data(as_text=True)

    figures = {
        name: detail.split(f'data-figure="{name}">')[1].split("<")[0]
        for name in ("attempts", "reserved", "paid", "expired", "refunded", "revenue")
    }
    assert figures == {
        "attempts": "2",
        "reserved": "0",
        "paid": "1",
        "expired": "1",
        "refunded": "0",
        "revenue": "CN¥99.00",  # the English name of the yuan
    }
    assert "Wang Fang" in detail and "Leo" in detail and "Expired" in detail
    rows = list(csv.DictReader(io.StringIO(export.get_data(as_text=True).lstrip("\ufeff"))))
    assert export.mimetype == "text/csv"
    assert sorted((row["parent"], row["status"], row["price"]) for row in rows) == [
        ("Parent 2", "expired", "99"),
        ("Wang Fang", "paid", "99"),
    ]
    # "+…" could start a formula in a spreadsheet: app.csvfile quotes it.
    assert {row["phone"] for row in rows} == {"'+8613900130001", "'+8613900130002"}
    assert "1/5" in listing and "Live" in listing


def test_another_institutions_sale_is_404_for_staff_and_on_the_public_page(client, institution):
    sale = make_flash_sale(institution)
    other = make_institution()
    db.session.commit()
    login(client, make_member(other, Role.OWNER))
    theirs = f"/staff/{other.slug}/flash-sales/{sale.id}"

    for path in (theirs, f"{theirs}/edit", f"{theirs}/orders.csv", f"{theirs}/qr.svg"):
        assert client.get(path).status_code == 404, path
    assert client.post(f"{theirs}/end").status_code == 404
    assert client.get(f"/{other.slug}/fs/{sale.code}").status_code == 404
    db.session.refresh(sale)
    assert sale.status == FlashSaleStatus.SCHEDULED


# --- the public page -------------------------------------------------------------------------


def test_the_page_counts_down_on_server_time_then_sells_then_ends(client, institution):
    starts = utcnow() + timedelta(hours=2)
    sale = make_flash_sale(institution, starts_at=starts, ends_at=starts + timedelta(hours=1))
    path = page_of(institution, sale)

    before = client.get(path).get_data(as_text=True)
    early = buy(client, institution, sale, 1)
    with time_machine.travel(starts + timedelta(minutes=1), tick=False):
        during = client.get(path).get_data(as_text=True)
    with time_machine.travel(starts + timedelta(hours=1, seconds=1), tick=False):
        after = client.get(path)
        late = buy(client, institution, sale, 2)

    assert "Starts in" in before
    assert f'data-deadline="{sale.starts_at.isoformat()}"' in before
    assert "data-server-now=" in before and "\x1f" not in before  # the server's clock
    assert f'data-opens-at="{sale.starts_at.isoformat()}"' in before and "disabled" in before
    assert "Remind me" in before
    assert 'property="og:title" content="Flash sale: 寒假营秒杀 at CN¥99.00"' in before
    assert early.status_code == 422  # the server refuses whatever the phone shows
    assert "This sale is not open right now." in early.get_data(as_text=True)
    assert "5 seats left" in during and "Buy now for CN¥99.00" in during
    assert "Remind me" not in during and "data-opens-at" not in during
    assert after.status_code == 200 and "This sale has ended" in after.get_data(as_text=True)
    assert late.status_code == 302
    assert count(FlashOrder) == 0 and count(Payment) == 0


def test_a_parent_buys_with_the_test_card_and_sees_the_enrolment(client, institution):
    sale = make_flash_sale(institution, stock=5)

    taken = buy(client, institution, sale, 1, pay=False, student_name="Leo")
    to_pay = client.get(taken.headers["Location"]).get_data(as_text=True)
    response = pay_for(client, institution, sale, taken)
    page = client.get(response.headers["Location"]).get_data(as_text=True)

    (order,) = orders(sale)
    assert taken.headers["Location"] == f"{page_of(institution, sale)}#order-{order.code}"
    assert "Seat taken! Pay within 10 minutes or it goes back on sale." in to_pay
    assert "Time left to pay" in to_pay and "Pay CN¥99.00 now" in to_pay
    assert "4 seats left" in to_pay  # the seat is theirs while they pay
    assert response.status_code == 302
    assert response.headers["Location"] == f"{page_of(institution, sale)}#order-{order.code}"
    assert order.status == FlashOrderStatus.PAID
    assert order.payment.status == PaymentStatus.CAPTURED
    enrolment = db.session.get(Enrolment, order.enrolment_id)
    assert (enrolment.course_id, enrolment.student.name) == (sale.course_id, "Leo")
    assert "Seat secured! Leo is enrolled in Maths Olympiad trial." in page
    assert "Seat secured: CN¥99.00 paid." in page
    assert "4 seats left" in page
    assert f"?ref={order.contact.referral_code}" in page  # their link to share
    db.session.refresh(sale)
    assert (sale.sold, sale.reserved) == (1, 0)


def test_only_the_family_that_took_a_seat_pays_for_it_and_only_in_time(client, institution):
    sale = make_flash_sale(institution, stock=5)
    taken = buy(client, institution, sale, 1, pay=False)
    (order,) = orders(sale)

    by_a_stranger = pay_for(client.application.test_client(), institution, sale, taken)
    with time_machine.travel(order.pay_by + timedelta(seconds=1)):
        too_late = pay_for(client, institution, sale, taken)

    db.session.refresh(order)
    assert by_a_stranger.status_code == 404
    assert too_late.status_code == 302 and too_late.headers["Location"] == page_of(
        institution, sale
    )
    assert order.status == FlashOrderStatus.PENDING and order.payment.intent_id is None


def test_a_family_over_its_limit_is_told_so(client, institution):
    sale = make_flash_sale(institution, stock=5)
    buy(client, institution, sale, 1)
    other_browser = client.application.test_client()

    again = buy(other_browser, institution, sale, 1, student_name="Younger child")
    mine = client.get(page_of(institution, sale)).get_data(as_text=True)

    assert again.status_code == 302  # back to the page, which says why
    told = other_browser.get(again.headers["Location"]).get_data(as_text=True)
    assert "as many seats in this sale as a family may buy" in told
    assert "as many seats in this sale as a family may buy" in mine  # no form for them
    assert len(orders(sale)) == 1


def test_the_same_tap_sent_twice_is_one_order(client, institution):
    sale = make_flash_sale(institution, stock=5)
    data = {"attempt": uuid.uuid4().hex, **parent(1)}

    first = client.post(page_of(institution, sale), data=data)
    # the second answer's session is the one the browser keeps: made from a session that
    # had not seen the first answer's
    client.delete_cookie("session")
    second = client.post(page_of(institution, sale), data=data)
    waiting = client.get(page_of(institution, sale)).get_data(as_text=True)
    run_burst()

    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert "its order is being written" in waiting  # not "could not confirm"
    assert len(orders(sale)) == 1 and count(Payment) == 1
    assert orders(sale)[0].status == FlashOrderStatus.PENDING  # paid for next


def test_the_family_sees_its_seat_being_written_then_the_pay_button(client, institution):
    sale = make_flash_sale(institution, stock=5)

    taken = buy(client, institution, sale, pay=False, run_writer=False)
    waiting = client.get(page_of(institution, sale)).get_data(as_text=True)
    run_burst()
    written = client.get(page_of(institution, sale)).get_data(as_text=True)

    code = taken.headers["Location"].rsplit("#order-", 1)[1]
    assert f'id="order-{code}" aria-busy="true"' in waiting
    assert "its order is being written" in waiting
    assert f'http-equiv="refresh" content="1; url={page_of(institution, sale)}"' in waiting
    assert "flash-pay" not in waiting and "flash-buy" not in waiting  # at its limit of 1
    assert f'id="order-{code}"' in written and "flash-pay" in written
    assert "being written" not in written and 'http-equiv="refresh"' not in written


def test_a_seat_the_database_refuses_or_redis_lost_is_told_once(client, institution):
    sale = make_flash_sale(institution, stock=5)
    refused = buy(client, institution, sale, n=1, pay=False, run_writer=False)
    with bound(institution):
        sale.reserved = 5  # the database's count says no seat is left
        db.session.commit()
    run_burst()

    told = client.get(page_of(institution, sale)).get_data(as_text=True)
    again = client.get(page_of(institution, sale)).get_data(as_text=True)

    code = refused.headers["Location"].rsplit("#order-", 1)[1]
    assert f'id="order-{code}"' in told and "Sorry, every seat is taken." in told
    assert f'id="order-{code}"' not in again and orders(sale) == []
    with bound(institution):
        sale.reserved = 0
        db.session.commit()

    lost = buy(client, institution, sale, n=2, pay=False, run_writer=False)
    redis_connection.client.flushall()  # the queued order with it
    with time_machine.travel(utcnow() + views.WRITE_WAIT + timedelta(seconds=1)):
        page = client.get(page_of(institution, sale)).get_data(as_text=True)

    code = lost.headers["Location"].rsplit("#order-", 1)[1]
    assert f'id="order-{code}"' in page and "We could not confirm this seat" in page
    assert "flash-buy" in page  # and they may try again


def test_a_tap_after_staff_end_the_sale_is_refused_though_the_terms_were_kept(client, institution):
    sale = make_flash_sale(institution, stock=5)
    buy(client, institution, sale, n=1, pay=False)  # this process keeps the sale's terms
    with bound(institution):
        services.end_flash_sale(institution, sale)
        db.session.commit()

    refused = buy(client, institution, sale, n=2, pay=False)

    assert refused.status_code == 302 and "#order-" not in refused.headers["Location"]
    assert len(orders(sale)) == 1
    page = client.get(page_of(institution, sale)).get_data(as_text=True)
    assert "This sale has ended" in page


def test_a_seat_taken_as_staff_end_the_sale_is_not_written(client, institution):
    sale = make_flash_sale(institution, stock=5)
    with bound(institution):
        terms = services.flash_terms(institution, sale.code)  # as a web process keeps them
        services.end_flash_sale(institution, sale)
        db.session.commit()
        # a web process that has not heard of the end yet takes a seat on the old terms
        with time_machine.travel(utcnow() + timedelta(milliseconds=5)):
            seat = services.take_flash_seat(
                institution,
                terms,
                FamilyDetails(parent_name="P", phone="13900139999", student_name="C"),
                Touch(SourceKind.CAMPAIGN),
                uuid.uuid4().hex,
            )
    run_burst()

    assert orders(sale) == []
    assert stock.refusals(sale.id, [seat.order_code]) == {seat.order_code: "closed"}


def test_without_an_attempt_key_the_server_makes_one(client, institution):
    sale = make_flash_sale(institution, stock=5)
    response = client.post(page_of(institution, sale), data=parent(1))  # no script ran
    run_burst()
    (order,) = orders(sale)
    assert response.status_code == 302 and len(order.attempt_key) >= 16


def test_a_declined_card_gives_the_seat_back_and_says_nothing_was_taken(client, institution):
    sale = make_flash_sale(institution, stock=1)

    response = buy(client, institution, sale, 1, card_number=DECLINED)
    page = client.get(response.headers["Location"]).get_data(as_text=True)

    (order,) = orders(sale)
    assert order.status == FlashOrderStatus.EXPIRED
    assert "The card was declined" in page and "Nothing is taken from your card" in page
    db.session.refresh(sale)
    assert (sale.sold, sale.reserved, sale.seats_left) == (0, 0, 1)
    retry = buy(client, institution, sale, 1)  # the same family, another card
    assert retry.status_code == 302 and orders(sale)[-1].status == FlashOrderStatus.PAID


def test_sold_out_is_a_clear_page_not_an_error(client, institution):
    sale = make_flash_sale(institution, stock=1)
    buy(client, institution, sale, 1)
    late_parent = client.application.test_client()

    late = buy(late_parent, institution, sale, 2)
    shown = late_parent.get(late.headers["Location"])
    stranger = client.application.test_client().get(page_of(institution, sale))

    assert late.status_code == 302
    assert shown.status_code == 200 and "Sold out" in shown.get_data(as_text=True)
    assert "Every seat of this sale is taken" in shown.get_data(as_text=True)
    assert "Sold out" in stranger.get_data(as_text=True)
    assert "Buy now" not in stranger.get_data(as_text=True)
    assert len(orders(sale)) == 1


def test_during_the_sale_the_page_is_served_without_the_database(client, institution):
    sale = make_flash_sale(institution, stock=5)
    stranger = client.application.test_client()
    path = page_of(institution, sale)

    first = stranger.get(path).get_data(as_text=True)
    with statements() as sent:
        kept = stranger.get(path).get_data(as_text=True)

    assert sent == []
    assert "5 seats left" in first and "5 seats left" in kept
    assert 'name="attempt"' in kept and 'value=""' in kept.split('name="attempt"')[1][:40]


def test_the_seats_left_are_never_more_than_redis_or_the_database_say(client, institution):
    sale = make_flash_sale(institution, stock=5)
    reserve_a_seat(institution, sale)
    assert stock.seats_left(sale.id) == 4

    page = client.get(page_of(institution, sale)).get_data(as_text=True)

    assert "4 seats left" in page


def test_remind_me_asks_once_however_often_it_is_sent(client, institution):
    sale = make_flash_sale(
        institution,
        starts_at=utcnow() + timedelta(days=1),
        ends_at=utcnow() + timedelta(days=1, hours=2),
    )
    data = {
        "remind-parent_name": "Wang Fang",
        "remind-phone": "138 0013 8000",
        "remind-consent": "y",
    }

    first = client.post(page_of(institution, sale), data=data)
    page = client.get(first.headers["Location"]).get_data(as_text=True)
    second = client.post(
        page_of(institution, sale), data={**data, "remind-phone": "+8613800138000"}
    )
    invalid = client.post(page_of(institution, sale), data={**data, "remind-phone": "12"})

    assert first.status_code == second.status_code == 302
    assert "we will remind you 5 minutes before the sale starts" in page
    assert invalid.status_code == 422 and "Enter a valid phone number." in invalid.get_data(True)
    assert count(FlashReminder) == 1
    messages = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.template == "flash_starting")
    ).all()
    assert len(messages) == 1
    assert messages[0].send_at == sale.starts_at - timedelta(minutes=5)
    assert count(FlashOrder) == 0


def test_purchases_and_reminders_are_limited_per_phone(app, client, institution, monkeypatch):
    monkeypatch.setitem(app.config, "FLASH_LIMIT_PER_PHONE", "2 per minute")
    sale = make_flash_sale(
        institution,
        starts_at=utcnow() + timedelta(days=1),
        ends_at=utcnow() + timedelta(days=1, hours=2),
    )
    data = {"remind-parent_name": "Wang", "remind-phone": "138 0013 8000", "remind-consent": "y"}

    answers = [
        client.post(
            page_of(institution, sale), data=data, environ_base={"REMOTE_ADDR": f"10.9.9.{n}"}
        ).status_code
        for n in range(3)
    ]

    assert answers == [302, 302, 429]


def test_with_the_payment_element_the_parent_pays_on_the_checkout_page_and_comes_back(
    app, client, institution, monkeypatch
):
    """Real Stripe: no card fields on the page; the order waits on the checkout page, where
    Stripe.js pays it, and our return page reads the payment back and goes on to the sale."""
    monkeypatch.setitem(app.config, "STRIPE_CHECKOUT", "payment_element")
    sale = make_flash_sale(institution, stock=5)
    path = page_of(institution, sale)
    form_page = client.get(path).get_data(as_text=True)

    bought = buy(client, institution, sale, 1, card_number="", card_cvc="")
    checkout_url = bought.headers["Location"]
    waiting = client.get(path).get_data(as_text=True)
    (order,) = orders(sale)

    assert "card_number" not in form_page
    assert bought.status_code == 302 and f"/{institution.slug}/pay/" in checkout_url
    assert order.status == FlashOrderStatus.PENDING
    assert "Pay CN¥99.00 now" in waiting and f"/orders/{order.code}/pay" in waiting
    again = client.post(f"{path}/orders/{order.code}/pay")  # back to the same intent
    assert f"/{institution.slug}/pay/" in again.headers["Location"] and count(Payment) == 1
    assert "4 seats left" in waiting  # the seat is theirs while they pay

    pay_like_stripe_js(order.payment.intent_id)
    back = client.get(f"{checkout_url}/done?redirect_status=succeeded")

    db.session.refresh(order)
    assert back.status_code == 302 and back.headers["Location"].endswith(path)
    assert order.status == FlashOrderStatus.PAID and order.enrolment_id is not None
    assert "Seat secured: CN¥99.00 paid." in client.get(path).get_data(as_text=True)


def test_once_sold_out_the_crowds_taps_are_refused_in_front_of_flask_until_a_seat_returns(
    client, institution, monkeypatch
):
    """The first "sold out" a web process gives is remembered: the next taps get the same
    answer without a Flask request (counted as attempts all the same), until the sale
    changes; an order that expires gives its seat back and the next tap buys it."""
    sale = make_flash_sale(institution, stock=1)
    assert wait_until(lambda: in_memory.started(client.application).listening)
    with time_machine.travel(utcnow(), tick=False):  # only the notice may end the refusal
        unpaid = reserve_a_seat(institution, sale)
        notices_heard()  # this process's own, of the commit above: none arrives mid-request
        first = buy(client.application.test_client(), institution, sale, 2)  # Flask: Lua
        dispatched = flask_dispatches(client.application, monkeypatch)
        crowd = [buy(client.application.test_client(), institution, sale, n) for n in (3, 4)]
        refused_in_front = len(dispatched)
        in_memory.add_counts()  # what each web process does every COUNTS_ADDED_EVERY
        counted = stock.attempts(sale.id)

        with bound(institution):
            services.expire_flash_order(institution, unpaid, force=True)
            db.session.commit()
        late = buy(client.application.test_client(), institution, sale, 5)

    page = page_of(institution, sale)
    assert [r.headers["Location"] for r in (first, *crowd)] == [page] * 3
    assert (refused_in_front, counted) == (0, 4)
    assert late.status_code == 302 and len(dispatched) == 2  # its tap, then its payment
    assert [o.status for o in orders(sale)] == [FlashOrderStatus.EXPIRED, FlashOrderStatus.PAID]


def notices_heard() -> None:
    """Wait until this process's listener has heard every change notice published so far
    (they come in order: a last one of our own, heard, means all were)."""
    heard = in_memory.generation
    redis_connection.client.publish(pagecache.CHANGES, "page:0:test:settle:v")
    assert wait_until(lambda: in_memory.generation > heard)
