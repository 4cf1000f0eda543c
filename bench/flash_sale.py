"""A flash sale at its start: --attempts purchase attempts from --families families on
--seats seats; attempts per second, latency, and whether a single seat was oversold or a
family got more than its limit.

Starts Cohort under gunicorn against a throwaway PostgreSQL database and a local
localstripe, publishes a sale that is live (in a school with --scale units of data,
bench/data.py, and --others other schools), has each family open the sale's share link
(untimed: a session and a CSRF token each), then has wrk send every attempt once from
--connections connections, each family's attempts spread through the run (a parent
tapping again and again). An attempt that wins a seat queues its order in Redis, and an
RQ worker (`python worker.py --queues payments`, running through the run as in
production, on the same two cores) writes the queued orders to the database; every other
attempt is refused (sold out, or the family's limit) by Redis before the database is
asked, or, once a web process has seen the sale sold out, in front of Flask. Once every
order is written (timed from the last attempt's answer), each family that took a seat
pays for it with the test card at localstripe (its own POST, as the parent does on the
page within the payment minutes), timed as a second line.

Prints one table (attempts and payments per second, latency percentiles, the hello-world
app's figure and the ratio), how long the worker took to write the orders after the last
attempt, and the counts that must hold: orders created equal to the seats, no seat
oversold (must be 0), no family over its limit (must be 0), every order paid.

    python bench/flash_sale.py --attempts 10000 --families 2000 --seats 100

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import random
import sys
import time
from dataclasses import replace
from datetime import timedelta

from data import load
from harness import (
    SECRET_KEY,
    TEST_CARD,
    Prepared,
    argument_parser,
    background_process,
    cohort_env,
    cohort_server,
    count_rows,
    fresh_app,
    hello_world,
    prepare_posts,
    print_counts,
    print_table,
    send_posts,
    settings_line,
    stop_process,
    stripe_config,
)

WARM_UP_SEATS = 20


def prepare(args, stripe_url: str) -> tuple[str, str, int, str, int]:
    """A school, a course and a live, published flash sale of --seats seats, and a second
    one of WARM_UP_SEATS to warm the server up on; returns (slug, sale code, sale id,
    warm-up sale code, warm-up sale id)."""
    from app.campaigns import services as campaigns
    from app.courses import services as courses
    from app.courses.models import CourseKind
    from app.db import utcnow
    from app.extensions import db
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis, **stripe_config(stripe_url))
    with app.app_context():
        institution = make_institution(slug="bench-school")
        with bound(institution):
            course = courses.save_course(
                institution, None, title="Winter camp", kind=CourseKind.REGULAR, capacity=10000
            )
            courses.add_lesson(course, starts_at=utcnow() + timedelta(days=9), duration_minutes=60)
            sale, warm_up = (
                campaigns.save_flash_sale(
                    institution,
                    None,
                    title=title,
                    description=None,
                    course_id=course.id,
                    list_price_amount=49900,
                    sale_price_amount=9900,
                    stock=seats,
                    starts_at=utcnow() - timedelta(minutes=1),
                    ends_at=utcnow() + timedelta(hours=2),
                    per_family_limit=1,
                    pay_minutes=10,
                )
                for title, seats in (
                    ("Winter camp flash sale", args.seats),
                    ("Spring camp flash sale", WARM_UP_SEATS),
                )
            )
            campaigns.publish_flash_sale(institution, sale)
            campaigns.publish_flash_sale(institution, warm_up)
            db.session.commit()
            result = institution.slug, sale.code, sale.id, warm_up.code, warm_up.id
        load(args, institution)
    return result


CHECKS = {
    "orders holding a seat": (
        "SELECT count(*) FROM flash_orders WHERE flash_sale_id = :sale "
        "AND status IN ('pending', 'paid')"
    ),
    "orders paid": (
        "SELECT count(*) FROM flash_orders WHERE flash_sale_id = :sale AND status = 'paid'"
    ),
    "oversold seats": (
        "SELECT greatest(count(*) - :seats, 0) FROM flash_orders WHERE flash_sale_id = :sale "
        "AND status IN ('pending', 'paid')"
    ),
    "families over their limit": (
        "SELECT count(*) FROM (SELECT contact_id FROM flash_orders WHERE flash_sale_id = :sale "
        "AND status IN ('pending', 'paid') GROUP BY contact_id HAVING count(*) > 1) o"
    ),
    "sale's sold + reserved": ("SELECT sold + reserved FROM flash_sales WHERE id = :sale"),
}


def wait_for_orders(args, sale_id: int, expected: int, timeout: float = 120) -> float:
    """Seconds from now until the worker has written every order the attempts queued
    (the queue in Redis is empty and the orders holding a seat are all there)."""
    import redis
    from sqlalchemy import create_engine, text

    client = redis.Redis.from_url(args.redis)
    engine = create_engine(args.database)
    started = time.perf_counter()
    with engine.connect() as connection:
        while time.perf_counter() - started < timeout:
            held = connection.execute(
                text(CHECKS["orders holding a seat"]), {"sale": sale_id}
            ).scalar()
            connection.rollback()
            if held >= expected and not client.llen(f"fs:{{{sale_id}}}:queue"):
                break
            time.sleep(0.005)
    engine.dispose()
    return time.perf_counter() - started


def payments_of(database: str, sale_id: int, code: str, visitors, families) -> list[Prepared]:
    """Each order's payment as its family's browser sends it: the pay button on the sale's
    page, with the session that the winning attempt's answer set (wrk drops cookies, so it
    is signed here as the server signs it: the family's session plus its order)."""
    from flask import Flask
    from flask.sessions import SecureCookieSessionInterface
    from sqlalchemy import create_engine, text

    engine = create_engine(database)
    with engine.connect() as connection:
        orders = connection.execute(
            text("SELECT code, phone FROM flash_orders WHERE flash_sale_id = :sale"),
            {"sale": sale_id},
        ).all()
    engine.dispose()
    signer = Flask(__name__)
    signer.secret_key = SECRET_KEY
    serializer = SecureCookieSessionInterface().get_signing_serializer(signer)
    by_phone = {fields["phone"][-8:]: n for n, (_page, _path, fields) in enumerate(families)}
    payments = []
    for order_code, phone in orders:
        visitor = visitors[by_phone[phone[-8:]]]
        cookies = dict(part.split("=", 1) for part in visitor.cookie.split("; "))
        session = serializer.loads(cookies["session"])
        session["flash_orders"] = {code: [order_code]}
        cookies["session"] = serializer.dumps(session)
        payments.append(
            Prepared(
                f"{visitor.path}/orders/{order_code}/pay",
                "; ".join(f"{k}={v}" for k, v in cookies.items()),
                visitor.body,  # its CSRF token and the test card
            )
        )
    return payments


def main() -> None:
    from app.devtools.localstripe import LocalStripe

    parser = argument_parser(__doc__, connections=32)
    parser.add_argument("--attempts", type=int, default=10000)
    parser.add_argument("--families", type=int, default=2000)
    parser.add_argument("--seats", type=int, default=100)
    args = parser.parse_args()

    stripe = LocalStripe().start()
    slug, code, sale_id, warm_up, warm_up_id = prepare(args, stripe.url)
    hello = hello_world(args)
    page = f"/{slug}/fs/{code}"
    families = [
        (
            page,
            page,
            {
                "parent_name": f"家长{n}",
                "phone": f"139{n:08d}",
                "student_name": f"孩子{n}",
                "consent": "y",
                **TEST_CARD,
            },
        )
        for n in range(args.families)
    ]
    worker = background_process(
        cohort_env(args, **stripe_config(stripe.url)), "--queues", "payments"
    )
    try:
        with cohort_server(args, **stripe_config(stripe.url)) as server:
            visitors = prepare_posts(server.base, families)  # one browser per family
            # Warmed up, as the hello-world app is by 2 s of GETs before its measured run:
            # each family taps once on another sale (every web process and thread then has
            # served the buying path, winners' and losers', as it has long before a sale
            # starts in production), and its orders are written. Untimed.
            warm_up_path = f"/{slug}/fs/{warm_up}"
            send_posts(
                server.base,
                [
                    replace(v, path=warm_up_path, body=f"{v.body}&attempt=warm-up-{n}")
                    for n, v in enumerate(visitors)
                ],
                args.connections,
            )
            wait_for_orders(args, warm_up_id, min(WARM_UP_SEATS, args.families))
            rng = random.Random(20261201)
            attempts = []
            for n in range(args.attempts):
                visitor = visitors[n % len(visitors)]
                attempts.append(replace(visitor, body=f"{visitor.body}&attempt=bench-{n}"))
            rng.shuffle(attempts)
            figures = send_posts(server.base, attempts, args.connections)
            writing = wait_for_orders(args, sale_id, min(args.seats, args.families))
            payments = payments_of(args.database, sale_id, code, visitors, families)
            paid = send_posts(server.base, payments, args.connections)
            memory = server.memory_mib()
    finally:
        stop_process(worker)
    stripe.stop()

    print(
        f"flash-sale attempts: {args.attempts} from {args.families} families on "
        f"{args.seats} seats (limit 1 a family); then each winner pays by card (localstripe)"
    )
    print(settings_line(args))
    print_table(
        "",
        [("flash-sale attempt POST", figures), ("then paying for a seat POST", paid)],
        hello,
        "post",
    )
    counts = count_rows(args.database, CHECKS, sale=sale_id, seats=args.seats)
    print(f"the worker wrote the last order {writing * 1000:.0f} ms after the last attempt")
    print_counts({**counts, **{f"HTTP {k}": v for k, v in sorted(figures.statuses.items())}})
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    ok = (
        sum(figures.statuses.values()) == args.attempts
        and sum(paid.statuses.values()) == len(payments)
        and counts["orders holding a seat"] == min(args.seats, args.families)
        and counts["oversold seats"] == 0
        and counts["families over their limit"] == 0
        and counts["orders paid"] == counts["orders holding a seat"]
        and counts["sale's sold + reserved"] == counts["orders holding a seat"]
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
