"""The pages parents open from a shared link, under a rush: requests per second and latency
of each, beside the hello-world Flask app on the same server settings.

Starts Cohort under gunicorn against a throwaway PostgreSQL database holding a school with
--scale units of data (bench/data.py: per unit 1,000 families with their submissions, 50
lessons and a group buy with 300 teams) and --others other schools, then has wrk open each
public page from --connections connections for --seconds: the group buy with its teams,
one team, a course, a lead form. Every request is a first visit (no cookies), as a parent
opening a shared link is: after the first, it is answered from the kept page
(app/pagecache.py).

Prints one table (requests/s, latency percentiles, ratio to hello-world, statuses), the
database transactions the server began per view over the whole run (the cache's point is
that a view begins none), the views counted (in Redis, then written back: none may be
lost), and the memory of each gunicorn worker.

    python bench/public_pages.py --connections 32 --seconds 10
    python bench/public_pages.py --scale 100 --others 100

It needs PostgreSQL, Redis and wrk (the database named by --database is dropped and
recreated).
"""

from __future__ import annotations

import sys
import time

from data import load
from harness import (
    STATISTICS_DELAY,
    argument_parser,
    cohort_server,
    count_rows,
    fresh_app,
    hello_world,
    load_get,
    print_counts,
    print_table,
    settings_line,
    transactions,
)


def prepare(args):
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis)
    with app.app_context():
        institution = make_institution(slug="bench-school")
        grown = load(args, institution)
        slug = institution.slug
    pages = {
        "group buy page": f"/{slug}/gb/{grown.group_buy_code}",
        "team page": f"/{slug}/gb/{grown.group_buy_code}/t/{grown.team_code}",
        "course page": f"/{slug}/c/{grown.course_code}",
        "lead form page": f"/{slug}/f/{grown.form_code}",
    }
    return app, grown, pages


def write_back_views(app) -> None:
    """What the scheduler does every COUNTER_INTERVAL_SECONDS, done once now."""
    from app.counters import sweep_counts
    from app.jobs import run_burst

    with app.app_context():
        sweep_counts()
        run_burst()


VIEWS = {
    "group buy views written back": "SELECT sum(view_count) FROM group_buys",
    "course views written back": "SELECT sum(view_count) FROM courses",
    "lead form views written back": "SELECT sum(view_count) FROM lead_forms",
}


def main() -> None:
    parser = argument_parser(__doc__, connections=32)
    args = parser.parse_args()
    app, _grown, pages = prepare(args)
    hello = hello_world(args)

    time.sleep(STATISTICS_DELAY)  # what loading the data did is reported first
    before = transactions(args.database)
    rows, answered = [], {}
    with cohort_server(args) as server:
        for name, path in pages.items():
            warm_up = load_get(server.base + path, args.connections, 1)
            figures = load_get(server.base + path, args.connections, args.seconds)
            rows.append((name, figures))
            answered[name] = warm_up.requests + figures.requests
        memory = server.memory_mib()
    time.sleep(STATISTICS_DELAY)  # the server's connections report what they did
    begun = transactions(args.database) - before
    views = sum(answered.values())

    print("public pages, every visitor a first visit")
    print(settings_line(args))
    print_table("", rows, hello, "req")
    print(
        f"database transactions begun by the server: {begun} for {views} views "
        f"(with the warm-ups), {begun / views:.4f} a view"
    )
    write_back_views(app)
    counted = count_rows(args.database, VIEWS)
    print_counts(
        {
            "group buy and team views answered": answered["group buy page"] + answered["team page"],
            **{k: v for k, v in counted.items() if k.startswith("group")},
            "course views answered": answered["course page"],
            **{k: v for k, v in counted.items() if k.startswith("course")},
            "lead form views answered": answered["lead form page"],
            **{k: v for k, v in counted.items() if k.startswith("lead")},
        }
    )
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    ok = all(set(f.statuses) == {200} and not f.socket_errors for _n, f in rows)
    print("all answered 200" if ok else "NOT ALL ANSWERED 200")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
