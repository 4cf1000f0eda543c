"""Flash sales (秒杀) from the services down: seats decided in Redis and guarded by the
database, under real parallel attempts; the family limit; orders that expire and give
their seat back; a late payment refunded; Redis flushed in the middle of a sale; and the
reminder before the start, once."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
import time_machine
from rq.timeouts import JobTimeoutException
from sqlalchemy import func, select

from app.campaigns import services, stock
from app.campaigns.models import FlashOrder, FlashOrderStatus, FlashSale, FlashSaleStatus
from app.campaigns.tasks import sweep_flash_orders
from app.contacts.models import FamilyDetails, SourceKind
from app.contacts.services import Touch
from app.courses.models import Enrolment
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.jobs import run_burst
from app.notifications.models import OutboxMessage
from app.payments import services as payments
from app.payments.models import PaymentStatus
from app.tenancy import bound, institution_by_id
from tests import factories
from tests.helpers import ON_POSTGRESQL, committed_data, committed_institution, run_in_parallel

CARD = ("4242424242424242", 12, 2030, "123")
needs_postgresql = pytest.mark.skipif(
    not ON_POSTGRESQL, reason="SQLite has one writer at a time: the race is PostgreSQL's"
)


def make_flash_sale(institution, stock_: int = 5, limit: int = 1, **values) -> FlashSale:
    return factories.make_flash_sale(institution, stock=stock_, per_family_limit=limit, **values)


def family(n: int) -> FamilyDetails:
    return FamilyDetails(parent_name=f"家长{n}", phone=f"1390013{n:04d}", student_name=f"孩子{n}")


def take(institution, sale, n: int, key: str | None = None) -> services.SeatTaken:
    """An attempt as the request makes it: decided in Redis, its order queued."""
    return services.take_flash_seat(
        institution, sale, family(n), Touch(SourceKind.CAMPAIGN), key or uuid.uuid4().hex
    )


def attempt(institution, sale, n: int, key: str | None = None) -> FlashOrder:
    """An attempt, then its order written as the writer job writes it."""
    seat = take(institution, sale, n, key)
    services.write_flash_orders(institution, sale.id)
    return db.session.scalar(select(FlashOrder).where(FlashOrder.code == seat.order_code))


def orders(sale, *statuses) -> list[FlashOrder]:
    query = select(FlashOrder).where(FlashOrder.flash_sale_id == sale.id)
    if statuses:
        query = query.where(FlashOrder.status.in_(statuses))
    return list(db.session.scalars(query))


def attempt_in_own_request(app, institution_id: int, sale_id: int, n: int, key=None) -> str:
    """One attempt as a request makes it, in its own app context and session."""
    with app.app_context():
        institution = institution_by_id(institution_id)
        with bound(institution):
            sale = db.session.get(FlashSale, sale_id)
            try:
                take(institution, sale, n, key)
                return "ok"
            except ServiceError as error:
                return error.code
            finally:
                db.session.remove()


# --- under a crowd -------------------------------------------------------------------------------


@pytest.mark.committed
@needs_postgresql
def test_two_hundred_parallel_attempts_on_five_seats_make_exactly_five_orders(app):
    with committed_data() as made:
        institution = committed_institution(made)
        sale = make_flash_sale(institution, stock_=5)
        ids = institution.id, sale.id
        db.session.remove()

        results = run_in_parallel(200, lambda n: attempt_in_own_request(app, *ids, n))
        assert stock.queue_length(ids[1]) == 5
        run_burst()  # the writer job the first winner woke

        assert sorted(set(results)) == ["ok", "sold_out"], set(results)
        assert results.count("ok") == 5
        assert stock.queue_length(ids[1]) == 0
        sale = db.session.get(FlashSale, ids[1])
        assert (sale.reserved, sale.sold, len(orders(sale))) == (5, 0, 5)
        assert stock.seats_left(sale.id) == 0


@pytest.mark.committed
@needs_postgresql
def test_one_family_sending_ten_parallel_attempts_gets_one_order(app):
    with committed_data() as made:
        institution = committed_institution(made)
        sale = make_flash_sale(institution, stock_=5, limit=1)
        ids = institution.id, sale.id
        db.session.remove()

        results = run_in_parallel(10, lambda _i: attempt_in_own_request(app, *ids, 7))
        run_burst()

        assert results.count("ok") == 1 and set(results) == {"ok", "over_limit"}, results
        sale = db.session.get(FlashSale, ids[1])
        assert (len(orders(sale)), sale.reserved, stock.seats_left(sale.id)) == (1, 1, 4)


def test_a_repeated_tap_is_the_same_attempt_and_takes_one_seat(tenant):
    sale = make_flash_sale(tenant, stock_=5, limit=3)
    first = attempt(tenant, sale, 1, key="tap-1")
    db.session.commit()

    again = attempt(tenant, sale, 1, key="tap-1")

    assert again.id == first.id and len(orders(sale)) == 1
    assert stock.seats_left(sale.id) == 4


# --- the window, the limit, the stock ------------------------------------------------------------


def test_attempts_before_the_start_or_after_the_end_are_refused_whatever_the_phone_shows(tenant):
    sale = make_flash_sale(
        tenant, starts_at=utcnow() + timedelta(hours=1), ends_at=utcnow() + timedelta(hours=2)
    )
    for moment in (sale.starts_at - timedelta(seconds=1), sale.ends_at):
        with time_machine.travel(moment, tick=False), pytest.raises(ServiceError) as refused:
            attempt(tenant, sale, 1)
        assert refused.value.code == "closed"
    with time_machine.travel(sale.starts_at, tick=False):
        assert attempt(tenant, sale, 1).status == FlashOrderStatus.PENDING


def test_a_sale_ended_early_by_staff_takes_no_attempt(tenant):
    sale = make_flash_sale(tenant)
    services.end_flash_sale(tenant, sale)
    db.session.commit()

    with pytest.raises(ServiceError) as refused:
        attempt(tenant, sale, 1)
    assert refused.value.code == "closed"


def test_stock_can_be_raised_but_never_lowered_below_what_is_taken_and_prices_are_locked(tenant):
    sale = make_flash_sale(tenant, stock_=3)
    attempt(tenant, sale, 1)
    attempt(tenant, sale, 2)
    db.session.commit()
    values = {
        name: getattr(sale, name)
        for name in (
            "title",
            "description",
            "course_id",
            "list_price_amount",
            "sale_price_amount",
            "stock",
            "starts_at",
            "ends_at",
            "per_family_limit",
            "pay_minutes",
        )
    }

    for change, code in (({"stock": 1}, "stock"), ({"sale_price_amount": 100}, "locked")):
        with pytest.raises(ServiceError) as refused:
            services.save_flash_sale(tenant, sale, **{**values, **change})
        assert refused.value.code == code
        db.session.rollback()

    services.save_flash_sale(tenant, sale, **{**values, "stock": 10})
    db.session.commit()
    assert stock.seats_left(sale.id) is None  # rebuilt from the database at the next attempt
    attempt(tenant, sale, 3)
    assert stock.seats_left(sale.id) == 7


# --- paying, expiring, refunding -----------------------------------------------------------------


def test_a_paid_order_enrols_the_child_and_sells_the_seat(tenant):
    sale = make_flash_sale(tenant)
    order = attempt(tenant, sale, 1)
    db.session.commit()

    payments.pay(order.payment, CARD)
    db.session.commit()

    db.session.refresh(order)
    db.session.refresh(sale)
    assert order.status == FlashOrderStatus.PAID and order.enrolment_id is not None
    enrolment = db.session.get(Enrolment, order.enrolment_id)
    assert enrolment.course_id == sale.course_id and enrolment.student_id == order.student_id
    assert (sale.sold, sale.reserved) == (1, 0)


def test_an_unpaid_order_expires_at_its_deadline_and_its_seat_goes_to_another_family(tenant):
    sale = make_flash_sale(tenant, stock_=1)
    first = attempt(tenant, sale, 1)
    db.session.commit()
    with pytest.raises(ServiceError) as sold_out:
        attempt(tenant, sale, 2)
    assert sold_out.value.code == "sold_out"
    db.session.rollback()

    with time_machine.travel(first.pay_by - timedelta(seconds=1), tick=False):
        sweep_flash_orders()
        run_burst()
    db.session.refresh(first)
    assert first.status == FlashOrderStatus.PENDING  # not a second early
    with time_machine.travel(first.pay_by + timedelta(seconds=1), tick=False):
        sweep_flash_orders()
        run_burst()
        second = attempt(tenant, sale, 2)
        db.session.commit()

    db.session.refresh(first)
    db.session.refresh(sale)
    assert first.status == FlashOrderStatus.EXPIRED and second.status == FlashOrderStatus.PENDING
    assert (sale.reserved, sale.sold) == (1, 0)
    told = db.session.scalars(
        select(OutboxMessage.template).where(OutboxMessage.contact_id == first.contact_id)
    ).all()
    assert "flash_expired" in told


def test_a_payment_that_arrives_after_the_order_expired_is_refunded(tenant):
    sale = make_flash_sale(tenant, stock_=1)
    order = attempt(tenant, sale, 1)
    db.session.commit()
    with time_machine.travel(order.pay_by + timedelta(seconds=1), tick=False):
        assert services.expire_flash_order(tenant, order)
        db.session.commit()
        payments.pay(order.payment, CARD)  # the card confirmed on the phone just too late
        db.session.commit()

    db.session.refresh(order)
    assert order.payment.status == PaymentStatus.REFUNDED
    assert order.status == FlashOrderStatus.REFUNDED and order.enrolment_id is None
    db.session.refresh(sale)
    assert (sale.sold, sale.reserved) == (0, 0)
    told = db.session.scalars(
        select(OutboxMessage.template).where(OutboxMessage.contact_id == order.contact_id)
    ).all()
    assert "flash_refunded" in told


def test_a_declined_card_gives_the_seat_back_at_once(tenant):
    sale = make_flash_sale(tenant, stock_=1)
    order = attempt(tenant, sale, 1)
    db.session.commit()

    payments.pay(order.payment, ("4000000000000341", 12, 2030, "123"))
    db.session.commit()

    db.session.refresh(order)
    assert order.status == FlashOrderStatus.EXPIRED
    assert stock.seats_left(sale.id) == 1
    assert attempt(tenant, sale, 2).status == FlashOrderStatus.PENDING


# --- Redis lost in the middle of a sale ----------------------------------------------------------


def test_after_a_redis_flushall_mid_sale_no_seat_is_sold_twice(tenant):
    sale = make_flash_sale(tenant, stock_=5, limit=1)
    for n in range(3):
        attempt(tenant, sale, n)
    db.session.commit()

    redis_connection.client.flushall()
    results = []
    for n in range(10):  # three of them already hold a seat
        try:
            attempt(tenant, sale, n)
            db.session.commit()
            results.append("ok")
        except ServiceError as error:
            db.session.rollback()
            results.append(error.code)

    assert results[:3] == ["over_limit"] * 3
    assert results.count("ok") == 2 and results[5:] == ["sold_out"] * 5
    db.session.refresh(sale)
    assert (sale.reserved, len(orders(sale))) == (5, 5)
    assert stock.seats_left(sale.id) == 0


def test_orders_still_queued_when_redis_is_flushed_are_lost_with_their_seats_never_sold_twice(
    tenant,
):
    sale = make_flash_sale(tenant, stock_=3, limit=1)
    attempt(tenant, sale, 0)  # written
    lost = [take(tenant, sale, n) for n in (1, 2)]  # queued, not yet written
    db.session.commit()

    redis_connection.client.flushall()
    results = [attempt(tenant, sale, n) for n in (3, 4)]
    with pytest.raises(ServiceError) as sold_out:
        take(tenant, sale, 5)

    assert sold_out.value.code == "sold_out"
    assert all(order.status == FlashOrderStatus.PENDING for order in results)
    db.session.refresh(sale)
    assert (sale.reserved, len(orders(sale)), stock.seats_left(sale.id)) == (3, 3, 0)
    written = {order.code for order in orders(sale)}
    assert not written & {seat.order_code for seat in lost}


# --- the writer ----------------------------------------------------------------------------------


def test_the_request_only_queues_the_order_and_the_writer_job_writes_it(tenant):
    sale = make_flash_sale(tenant, stock_=5)

    seat = take(tenant, sale, 1)

    assert seat.new and orders(sale) == []
    assert (stock.queue_length(sale.id), stock.seats_left(sale.id)) == (1, 4)
    run_burst()  # the job the attempt woke
    (order,) = orders(sale)
    assert (order.code, order.status, order.phone) == (seat.order_code, "pending", "+8613900130001")
    assert order.payment is not None and order.contact.parent_name == "家长1"
    assert stock.queue_length(sale.id) == 0
    db.session.refresh(sale)
    assert sale.reserved == 1


def test_the_writer_waits_while_the_crowd_still_taps_then_writes_the_orders_together(
    app, tenant, monkeypatch
):
    """At a sale's start the writer leaves the machine to the crowd's taps: it waits while
    each wait adds attempts to the sale's count (the taps that take a seat, and those
    refused once the seats are gone, counted by the script or added by a web process that
    refused them from memory), and writes the orders once a wait adds none."""
    monkeypatch.setitem(app.config, "FLASH_WRITER_QUIET_SECONDS", 0.5)
    sale = make_flash_sale(tenant, stock_=2)
    take(tenant, sale, 1)  # the tap that woke the writer
    clock, waits = [0.0], []
    monkeypatch.setattr(services, "monotonic", lambda: clock[0])

    def the_crowd_taps_during_the_first_three_waits(seconds: float) -> None:
        clock[0] += seconds
        waits.append(seconds)
        if len(waits) == 1:
            take(tenant, sale, 2)  # the last seat
        elif len(waits) == 2:
            with pytest.raises(ServiceError) as refused:
                take(tenant, sale, 3)  # refused by the script, which counts it
            assert refused.value.code == "sold_out"
        elif len(waits) == 3:
            # 40 refused from memory in front of Flask, added to the count by their web
            # process (test_flash_views: ..._refused_in_front_of_flask_...)
            redis_connection.client.incrby(stock.attempts_key(sale.id), 40)

    monkeypatch.setattr(services, "sleep", the_crowd_taps_during_the_first_three_waits)

    assert services.write_flash_orders(tenant, sale.id) == 2

    assert waits == [0.5, 0.5, 0.5, 0.5]  # three that brought a tap, then a quiet one
    assert len(orders(sale, FlashOrderStatus.PENDING)) == 2
    assert stock.queue_length(sale.id) == 0


def test_the_writer_waits_no_longer_than_its_longest_wait(app, tenant, monkeypatch):
    """A crowd that never stops (a sale that is never sold out, taps refused for minutes)
    has its orders written after FLASH_WRITER_WAIT_SECONDS all the same. And a quiet wait
    set shorter than two of the web processes' additions to the count is taken as that:
    it would take the gap between two additions for a quiet crowd."""
    monkeypatch.setitem(app.config, "FLASH_WRITER_QUIET_SECONDS", 0.1)
    monkeypatch.setitem(app.config, "FLASH_WRITER_WAIT_SECONDS", 1.8)
    sale = make_flash_sale(tenant, stock_=2)
    take(tenant, sale, 1)
    clock, waits = [0.0], []
    monkeypatch.setattr(services, "monotonic", lambda: clock[0])

    def the_crowd_never_stops(seconds: float) -> None:
        clock[0] += seconds
        waits.append(seconds)
        redis_connection.client.incrby(stock.attempts_key(sale.id), 10)

    monkeypatch.setattr(services, "sleep", the_crowd_never_stops)

    assert services.write_flash_orders(tenant, sale.id) == 1

    assert waits == [0.5, 0.5, 0.5, pytest.approx(0.3)]  # the last one to the deadline
    assert clock[0] == pytest.approx(1.8)


def test_an_order_the_database_refuses_gives_its_seat_back_and_its_family_is_told(tenant):
    sale = make_flash_sale(tenant, stock_=2)
    seat = take(tenant, sale, 1)
    # The database's count says otherwise than Redis's (as after a rebuild from a moment
    # when the order that took the seat had not been committed yet).
    sale.reserved = 2
    db.session.commit()

    assert services.write_flash_orders(tenant, sale.id) == 0

    assert orders(sale) == [] and stock.queue_length(sale.id) == 0
    assert stock.refusals(sale.id, [seat.order_code]) == {seat.order_code: "sold_out"}
    assert stock.seats_left(sale.id) == 2  # the seat Redis took is back
    db.session.refresh(sale)
    assert sale.reserved == 2  # the database's own count, untouched


def test_a_batch_the_database_has_not_every_seat_for_is_written_order_by_order(tenant):
    sale = make_flash_sale(tenant, stock_=3)
    first, second = take(tenant, sale, 1), take(tenant, sale, 2)
    sale.reserved = 2  # the database has one seat left where Redis counted two
    db.session.commit()

    assert services.write_flash_orders(tenant, sale.id) == 1

    (order,) = orders(sale)
    assert order.code == first.order_code and order.status == FlashOrderStatus.PENDING
    assert stock.refusals(sale.id, [second.order_code]) == {second.order_code: "sold_out"}
    db.session.refresh(sale)
    assert sale.reserved == 3  # the database's 2, and the first order's seat
    assert stock.seats_left(sale.id) == 2  # Redis's own 1 left, and the second's given back


def test_a_writer_whose_time_is_up_stops_and_leaves_its_orders_queued(tenant, monkeypatch):
    """RQ's timeout is not an order's failure: the seats stay taken, their orders queued
    for the next writer."""
    sale = make_flash_sale(tenant, stock_=5)
    seat = take(tenant, sale, 1)

    def times_up(*args, **kwargs):
        raise JobTimeoutException("the job's time is up")

    monkeypatch.setattr(services, "_write_flash_order", times_up)
    with pytest.raises(JobTimeoutException):
        services.write_flash_orders(tenant, sale.id)

    assert stock.queue_length(sale.id) == 1
    assert stock.refusals(sale.id, [seat.order_code]) == {}
    assert stock.seats_left(sale.id) == 4


def test_an_order_the_database_refuses_in_a_batch_leaves_the_others_written(tenant):
    """The database's count of a family's seats holds its limit whatever Redis said: the
    batch, written in one go, is written again order by order, and only the order over
    the limit is refused."""
    sale = make_flash_sale(tenant, stock_=5, limit=1)
    first = take(tenant, sale, 1)
    sale.per_family_limit = 2  # the terms Redis decided on said two (not in the database)
    second, other = take(tenant, sale, 1), take(tenant, sale, 2)
    db.session.refresh(sale)

    assert services.write_flash_orders(tenant, sale.id) == 2

    assert {order.code for order in orders(sale)} == {first.order_code, other.order_code}
    assert stock.refusals(sale.id, [second.order_code]) == {second.order_code: "over_limit"}
    db.session.refresh(sale)
    assert sale.reserved == 2
    assert stock.seats_left(sale.id) == 3  # the refused order's seat is back


def test_a_writer_that_died_after_its_commit_writes_no_order_twice(tenant):
    sale = make_flash_sale(tenant, stock_=5)
    seat = take(tenant, sale, 1)
    (queued,) = stock.queued(sale.id, 10)
    services.write_flash_orders(tenant, sale.id)
    # What a writer killed between its commit and taking its orders off the queue leaves.
    redis_connection.client.rpush(f"fs:{{{sale.id}}}:queue", queued.dumps())

    services.write_flash_orders(tenant, sale.id)

    (order,) = orders(sale)
    assert order.code == seat.order_code and stock.queue_length(sale.id) == 0
    db.session.refresh(sale)
    assert sale.reserved == 1 and stock.seats_left(sale.id) == 4


def test_the_sweeper_wakes_a_writer_for_orders_whose_job_was_lost(tenant):
    sale = make_flash_sale(tenant, stock_=5)
    take(tenant, sale, 1)
    lost = f"rq:job:{services.writer_job_id(sale.id)}"
    assert redis_connection.client.delete("rq:queue:payments", lost) == 2  # the woken job

    run_burst()
    assert orders(sale) == []
    sweep_flash_orders()
    run_burst()

    assert len(orders(sale)) == 1 and stock.queue_length(sale.id) == 0


def test_the_sweeper_leaves_the_queue_to_a_writer_that_holds_the_sales_lock(tenant):
    """The writer runs in the worker's own process, which does not beat while it runs:
    its lock, renewed with each batch, says it is on its way."""
    sale = make_flash_sale(tenant, stock_=5)
    take(tenant, sale, 1)
    redis_connection.client.delete("rq:queue:payments", f"rq:job:{services.writer_job_id(sale.id)}")

    with stock.writing(sale.id) as token:
        assert token is not None
        assert sweep_flash_orders() == 0
    assert sweep_flash_orders() == 1  # the lock let go of, orders still queued


# --- the reminder --------------------------------------------------------------------------------


def test_remind_me_reaches_each_family_once_five_minutes_before_the_start(tenant):
    from app.contacts.services import find_family

    sale = make_flash_sale(
        tenant, starts_at=utcnow() + timedelta(hours=2), ends_at=utcnow() + timedelta(hours=3)
    )
    contact, _ = find_family(tenant, family(1), Touch(SourceKind.CAMPAIGN))
    contact.email = "parent1@example.com"

    assert services.ask_flash_reminder(tenant, sale, contact)
    db.session.commit()
    redis_connection.client.flushall()
    assert not services.ask_flash_reminder(tenant, sale, contact)
    db.session.commit()

    messages = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.template == "flash_starting", OutboxMessage.channel == "email"
        )
    ).all()
    assert len(messages) == 1
    assert messages[0].send_at == sale.starts_at - timedelta(minutes=5)
    assert db.session.scalar(select(func.count()).select_from(FlashSale)) == 1
    assert sale.status == FlashSaleStatus.SCHEDULED
