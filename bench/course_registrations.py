"""A rush on a trial course: registrations per second, latency, and whether any lesson
took more children than it has seats.

Starts Cohort under gunicorn against a throwaway PostgreSQL database, creates a free
course with --lessons lessons of --capacity seats each (in a school with --scale units of
data, bench/data.py, and --others other schools), has --families parents open the course
page (untimed: each gets its session and CSRF token), then has wrk send their
registrations, a child for every lesson, from --connections connections. Prints one table
(registrations per second, latency percentiles, the hello-world app's figure and the
ratio), the SQL statements of one registration, and the counts that must hold: no lesson
with more booked seats than its capacity, every other place on the waitlist, one seat row
per family and lesson, three reminders per e-mail per booked seat.

    python bench/course_registrations.py --families 400 --capacity 20 --lessons 3

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import sys
from collections import Counter
from datetime import datetime, time, timedelta

from data import load
from harness import (
    argument_parser,
    cohort_server,
    count_rows,
    fresh_app,
    hello_world,
    prepare_posts,
    print_counts,
    print_table,
    send_posts,
    settings_line,
)


def prepare(args, price_amount: int = 0, **config) -> tuple[str, str, list[int]]:
    """A school with the data asked for and a course (a trial, or a regular course if it
    has a price) of --lessons lessons of --capacity seats; returns (slug, course code,
    lesson ids)."""
    from app.courses import services as courses
    from app.courses.models import CourseKind
    from app.db import utcnow
    from app.extensions import db
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis, **config)
    with app.app_context():
        institution = make_institution(slug="bench-school")
        with bound(institution):
            course = courses.save_course(
                institution,
                None,
                title="Bench course",
                kind=CourseKind.REGULAR if price_amount else CourseKind.TRIAL,
                capacity=args.capacity,
                price_amount=price_amount,
            )
            # At 10:00 local, whatever the hour of the run: each seat then has its three
            # reminders (the morning one, on the lesson's day, comes before it).
            today = utcnow().astimezone(institution.zone).date()
            ids = [
                courses.add_lesson(
                    course,
                    starts_at=datetime.combine(
                        today + timedelta(days=2 + n), time(10), tzinfo=institution.zone
                    ),
                    duration_minutes=60,
                ).id
                for n in range(args.lessons)
            ]
            result = institution.slug, course.code, ids
            db.session.commit()
        load(args, institution)
    return result


def registration(family: int, lesson_ids: list[int], **more) -> dict:
    return {
        "parent_name": f"Parent {family}",
        "phone": f"139{family:08d}",
        "email": f"parent{family}@example.com",
        "student_name": f"Child {family}",
        "consent": "y",
        "lessons": lesson_ids,
        **more,
    }


def registrations(args, slug: str, code: str, lesson_ids: list[int], **more):
    """Each family's page and POST, ready for prepare_posts."""
    path = f"/{slug}/c/{code}"
    return [(path, path, registration(f, lesson_ids, **more)) for f in range(args.families)]


CHECKS = {
    "enrolments": "SELECT count(*) FROM enrolments e JOIN courses c ON c.id = e.course_id "
    "WHERE c.title = 'Bench course'",
    "seats booked": "SELECT count(*) FROM seats s JOIN lessons l ON l.id = s.lesson_id "
    "JOIN courses c ON c.id = l.course_id WHERE c.title = 'Bench course' AND s.status = 'booked'",
    "waitlist places": "SELECT count(*) FROM seats WHERE status = 'waitlisted'",
    "lessons over capacity": (
        "SELECT count(*) FROM (SELECT lesson_id FROM seats WHERE status = 'booked' "
        "GROUP BY lesson_id HAVING count(*) > :cap) o"
    ),
    "lessons whose counter is not their booked seats": (
        "SELECT count(*) FROM lessons l WHERE l.taken_seats <> (SELECT count(*) FROM seats s "
        "WHERE s.lesson_id = l.id AND s.status IN ('booked', 'held'))"
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

    slug, code, lesson_ids = prepare(args)
    hello = hello_world(args)
    with cohort_server(args) as server:
        posts = prepare_posts(server.base, registrations(args, slug, code, lesson_ids))
        figures = send_posts(server.base, posts, args.connections)
        memory = server.memory_mib()

    print(
        f"trial registration POST: {args.families} families, "
        f"{args.lessons} lessons x {args.capacity} seats"
    )
    print(settings_line(args))
    print_table("", [("trial registration POST", figures)], hello, "post")
    counts = count_rows(args.database, CHECKS, cap=args.capacity)
    print_counts(counts)
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    places = args.families * args.lessons
    booked = min(args.families, args.capacity) * args.lessons
    ok = (
        figures.statuses == Counter({302: args.families})
        and counts["enrolments"] == args.families
        and counts["lessons over capacity"] == 0
        and counts["lessons whose counter is not their booked seats"] == 0
        and counts["seats booked"] == booked
        and counts["waitlist places"] == places - booked
        and counts["e-mail reminders scheduled"] == booked * 3
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
