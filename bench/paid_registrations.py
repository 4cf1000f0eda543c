"""A rush on a paid course: registrations per second, latency, and whether any lesson took
more children than it has seats or anyone paid without getting one.

Starts localstripe and Cohort under gunicorn against a throwaway PostgreSQL database,
creates a paid course with --lessons lessons of --capacity seats each, then has --families
parents (threads, --concurrency at a time) register a child for every lesson and pay with
the test card. A registration holds its seats under the lessons' row locks before any
payment begins, so the families who find the lessons full are refused (422) without being
charged. Prints registrations per second, POST latency percentiles, and the counts that
must hold: no lesson over capacity, one captured payment per family with seats, no payment
for a family without, nothing left held or pending.

    python bench/paid_registrations.py --families 300 --capacity 50 --lessons 2

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated).
"""

from __future__ import annotations

import sys
from collections import Counter

from course_registrations import prepare
from harness import (
    TEST_CARD,
    argument_parser,
    count_rows,
    latency_line,
    post_like_a_parent,
    run_clients,
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
    slug, code, lesson_ids = prepare(
        args.database,
        args.redis,
        args.lessons,
        args.capacity,
        price_amount=PRICE,
        **stripe_config(stripe.url),
    )

    def register(base: str, family: int):
        return post_like_a_parent(
            f"{base}/{slug}/c/{code}",
            {
                "parent_name": f"Parent {family}",
                "phone": f"139{family:08d}",
                "student_name": f"Child {family}",
                "consent": "y",
                "lessons": lesson_ids,
                **TEST_CARD,
            },
        )

    results, elapsed = run_clients(
        args, args.families, register, extra_env=stripe_config(stripe.url)
    )
    stripe.stop()
    statuses = Counter(status for status, _latency in results)
    print(
        f"registrations   {args.families} families from {args.concurrency} parallel clients, "
        f"{args.lessons} lessons x {args.capacity} seats, paid by card (localstripe), "
        f"gunicorn {args.workers} workers x 4"
    )
    print(f"throughput      {args.families / elapsed:.1f} registrations/s ({elapsed:.1f} s)")
    print(f"POST latency    {latency_line([latency for _status, latency in results])}")
    print(f"statuses        {dict(statuses)}")
    counts = count_rows(args.database, CHECKS, cap=args.capacity)
    for name, value in counts.items():
        print(f"{name:<34}{value}")
    winners = min(args.families, args.capacity)
    ok = (
        statuses == +Counter({302: winners, 422: args.families - winners})
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
