"""A rush on a trial course: registrations per second, latency, and whether any lesson
took more children than it has seats.

Starts Cohort under gunicorn against a throwaway PostgreSQL database, creates a free
course with --lessons lessons of --capacity seats each, then has --families parents
(threads, --concurrency at a time) open the course page and register a child for every
lesson. Prints registrations per second, POST latency percentiles, and the counts that
must hold: no lesson with more booked seats than its capacity, every other place on the
waitlist, one seat row per family and lesson, three reminders per e-mail per booked seat.

    python bench/course_registrations.py --families 400 --capacity 20 --lessons 3

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import timedelta

from harness import (
    argument_parser,
    count_rows,
    fresh_app,
    latency_line,
    post_like_a_parent,
    run_clients,
)


def prepare(
    database_url: str,
    redis_url: str,
    lessons: int,
    capacity: int,
    price_amount: int = 0,
    **config,
):
    """A school and a course (a trial, or a regular course if it has a price); returns
    (slug, course code, lesson ids)."""
    from app.courses import services as courses
    from app.courses.models import CourseKind
    from app.db import utcnow
    from app.extensions import db
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(database_url, redis_url, **config)
    with app.app_context():
        institution = make_institution(slug="bench-school")
        with bound(institution):
            course = courses.save_course(
                institution,
                None,
                title="Bench course",
                kind=CourseKind.REGULAR if price_amount else CourseKind.TRIAL,
                capacity=capacity,
                price_amount=price_amount,
            )
            ids = [
                courses.add_lesson(
                    course, starts_at=utcnow() + timedelta(days=2 + n), duration_minutes=60
                ).id
                for n in range(lessons)
            ]
            result = institution.slug, course.code, ids
            db.session.commit()
    return result


CHECKS = {
    "enrolments": "SELECT count(*) FROM enrolments",
    "seats booked": "SELECT count(*) FROM seats WHERE status = 'booked'",
    "waitlist places": "SELECT count(*) FROM seats WHERE status = 'waitlisted'",
    "lessons over capacity": (
        "SELECT count(*) FROM (SELECT lesson_id FROM seats WHERE status = 'booked' "
        "GROUP BY lesson_id HAVING count(*) > :cap) o"
    ),
    "seats booked beyond capacity": (
        "SELECT coalesce(sum(n - :cap), 0) FROM (SELECT count(*) n FROM seats "
        "WHERE status = 'booked' GROUP BY lesson_id HAVING count(*) > :cap) o"
    ),
    "e-mail reminders scheduled": (
        "SELECT count(*) FROM outbox_messages WHERE template = 'lesson_reminder' "
        "AND channel = 'email'"
    ),
}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--families", type=int, default=400)
    parser.add_argument("--capacity", type=int, default=20)
    parser.add_argument("--lessons", type=int, default=3)
    args = parser.parse_args()

    slug, code, lesson_ids = prepare(args.database, args.redis, args.lessons, args.capacity)

    def register(base: str, family: int):
        return post_like_a_parent(
            f"{base}/{slug}/c/{code}",
            {
                "parent_name": f"Parent {family}",
                "phone": f"139{family:08d}",
                "email": f"parent{family}@example.com",
                "student_name": f"Child {family}",
                "consent": "y",
                "lessons": lesson_ids,
            },
        )

    results, elapsed = run_clients(args, args.families, register)
    statuses = Counter(status for status, _latency in results)
    print(
        f"registrations   {args.families} families from {args.concurrency} parallel clients, "
        f"{args.lessons} lessons x {args.capacity} seats, gunicorn {args.workers} workers x 4"
    )
    print(f"throughput      {args.families / elapsed:.1f} registrations/s ({elapsed:.1f} s)")
    print(f"POST latency    {latency_line([latency for _status, latency in results])}")
    print(f"statuses        {dict(statuses)}")
    counts = count_rows(args.database, CHECKS, cap=args.capacity)
    for name, value in counts.items():
        print(f"{name:<32}{value}")
    places = args.families * args.lessons
    booked = min(args.families, args.capacity) * args.lessons
    ok = (
        statuses == Counter({302: args.families})
        and counts["enrolments"] == args.families
        and counts["lessons over capacity"] == 0
        and counts["seats booked"] == booked
        and counts["waitlist places"] == places - booked
        and counts["e-mail reminders scheduled"] == booked * 3
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
