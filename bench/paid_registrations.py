"""A rush on a paid course: registrations per second, latency, and whether any lesson took
more children than it has seats or anyone paid without getting one.

Starts localstripe and Cohort under gunicorn against a throwaway PostgreSQL database,
creates a paid course with --lessons lessons of --capacity seats each (in a school with
--scale units of data, bench/data.py, and --others other schools), has --families parents
open the course page (untimed), then has wrk send their registrations, a child for every
lesson paid with the test card, from --connections connections. A registration holds its
seats (a conditional update of each lesson's counter) before any payment begins, so the
families who find the lessons full are refused (422) without being charged. Prints one
table (registrations per second, latency percentiles, the hello-world app's figure and
the ratio) and the counts that must hold: no lesson over capacity, one captured payment
per family with seats, no payment for a family without, nothing left held or pending.

    python bench/paid_registrations.py --families 300 --capacity 50 --lessons 2

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import sys
from collections import Counter

from course_registrations import prepare, registrations
from harness import (
    TEST_CARD,
    argument_parser,
    cohort_server,
    count_rows,
    hello_world,
    prepare_posts,
    print_counts,
    print_table,
    send_posts,
    settings_line,
    stripe_config,
)

PRICE = 19900


CHECKS = {
    "seats booked": "SELECT count(*) FROM seats WHERE status = 'booked'",
    "seats still held": "SELECT count(*) FROM seats WHERE status = 'held'",
    "lessons over capacity": (
        "SELECT count(*) FROM (SELECT lesson_id FROM seats WHERE status IN ('booked', 'held') "
        "GROUP BY lesson_id HAVING count(*) > :cap) o"
    ),
    "payments captured": "SELECT count(*) FROM payments WHERE status = 'captured'",
    "payments not captured": "SELECT count(*) FROM payments WHERE status <> 'captured'",
    "captured payments without seats": (
        "SELECT count(*) FROM payments p WHERE p.status = 'captured' AND NOT EXISTS "
        "(SELECT 1 FROM seats s WHERE s.payment_id = p.id AND s.status = 'booked')"
    ),
}


def main() -> None:
    from app.devtools.localstripe import LocalStripe

    parser = argument_parser(__doc__)
    parser.add_argument("--families", type=int, default=300)
    parser.add_argument("--capacity", type=int, default=50)
    parser.add_argument("--lessons", type=int, default=2)
    args = parser.parse_args()

    stripe = LocalStripe().start()
    slug, code, lesson_ids = prepare(args, price_amount=PRICE, **stripe_config(stripe.url))
    hello = hello_world(args)
    with cohort_server(args, **stripe_config(stripe.url)) as server:
        wanted = registrations(args, slug, code, lesson_ids, **TEST_CARD)
        posts = prepare_posts(server.base, wanted)
        figures = send_posts(server.base, posts, args.connections)
        memory = server.memory_mib()
    stripe.stop()

    print(
        f"paid registration POST: {args.families} families, {args.lessons} lessons x "
        f"{args.capacity} seats, paid by card (localstripe in this process)"
    )
    print(settings_line(args))
    print_table("", [("paid registration POST", figures)], hello, "post")
    counts = count_rows(args.database, CHECKS, cap=args.capacity)
    print_counts(counts)
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    winners = min(args.families, args.capacity)
    ok = (
        figures.statuses == +Counter({302: winners, 422: args.families - winners})
        and counts["lessons over capacity"] == 0
        and counts["seats booked"] == winners * args.lessons
        and counts["seats still held"] == 0
        and counts["payments captured"] == winners
        and counts["payments not captured"] == 0
        and counts["captured payments without seats"] == 0
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
