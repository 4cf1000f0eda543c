"""Load on the public lead form: throughput, latency and correctness under concurrency.

Starts Cohort under gunicorn against a throwaway PostgreSQL database, creates a school and
a form (with --scale units of data, bench/data.py, and --others other schools), has
parents open the form (untimed: each gets its session and CSRF token), then has wrk send
--requests submissions from --connections connections, each family several times and
with its phone written in different formats. Prints one table (submissions per second,
latency percentiles, the hello-world app's figure and the ratio), status counts, and the
correctness counts that must hold: one contact per family, one open lead per family, no
duplicate submissions inside the double-submit window.

    python bench/form_submissions.py --requests 2000 --connections 16 --families 400

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated). Rate limits are switched off for the server it
starts, since every request comes from one address.
"""

from __future__ import annotations

import sys
from collections import Counter

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

PHONE_FORMATS = ("138 {a} {b}", "+86 138{a}{b}", "138-{a}-{b}", "+86138{a}{b}")


def prepare(args) -> tuple[str, str, int]:
    """A fresh database with the schema, one school, one form and the data asked for;
    returns (slug, form code, form id)."""
    from app.extensions import db
    from app.leads import services as leads
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis)
    with app.app_context():
        institution = make_institution(slug="bench-school")
        with bound(institution):
            form = leads.save_form(
                institution,
                None,
                title="Bench form",
                intro=None,
                fields=[*leads.default_fields(), {"key": "subject", "required": True}],
                consent_text=None,
                thank_you_message=None,
                redirect_url=None,
                is_open=True,
                closes_at=None,
                submission_cap=None,
            )
            db.session.commit()
        result = institution.slug, form.code, form.id
        load(args, institution, form)
    return result


def submission(family: int, attempt: int) -> dict:
    """A parent's answers, with the phone written one of four ways."""
    number = f"{family:08d}"
    phone = PHONE_FORMATS[attempt % len(PHONE_FORMATS)].format(a=number[:4], b=number[4:])
    return {"parent_name": f"Parent {family}", "phone": phone, "subject": "Maths"}


# The bench's families have phones +86138...; bench/data.py's, +86137...
CHECKS = {
    "contacts": "SELECT count(*) FROM contacts WHERE phone LIKE '+86138%'",
    "leads": (
        "SELECT count(*) FROM leads l JOIN contacts c ON c.id = l.contact_id "
        "WHERE c.phone LIKE '+86138%'"
    ),
    "submissions": "SELECT count(*) FROM form_submissions WHERE phone LIKE '+86138%'",
    "families with 2+ contacts": (
        "SELECT count(*) FROM (SELECT institution_id, phone FROM contacts "
        "GROUP BY institution_id, phone HAVING count(*) > 1) d"
    ),
    "families with 2+ open leads": (
        "SELECT count(*) FROM (SELECT contact_id FROM leads WHERE stage NOT IN "
        "('enrolled', 'lost') GROUP BY contact_id HAVING count(*) > 1) d"
    ),
    "submissions inside the double-submit window": (
        "SELECT count(*) FROM form_submissions a JOIN form_submissions b ON "
        "a.form_id = b.form_id AND a.phone = b.phone AND a.id < b.id AND "
        "b.created_at - a.created_at < interval '10 minutes'"
    ),
}


def main() -> None:
    parser = argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--families", type=int, default=400)
    args = parser.parse_args()

    slug, code, _form_id = prepare(args)
    hello = hello_world(args)
    attempts: Counter = Counter()
    wanted = []
    for i in range(args.requests):
        family = 13800000 + i % args.families
        attempts[family] += 1
        path = f"/{slug}/f/{code}?utm_source=bench"
        wanted.append((path, path, submission(family, attempts[family])))
    with cohort_server(args) as server:
        posts = prepare_posts(server.base, wanted)
        figures = send_posts(server.base, posts, args.connections)
        memory = server.memory_mib()

    print(f"lead form POST: {args.requests} submissions of {args.families} families")
    print(settings_line(args))
    print_table("", [("lead form POST", figures)], hello, "post")
    counts = count_rows(args.database, CHECKS)
    print_counts(counts)
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    expected = min(args.families, args.requests)
    ok = (
        figures.statuses == Counter({302: args.requests})
        and counts["contacts"] == expected
        and counts["leads"] == expected
        and counts["families with 2+ contacts"] == 0
        and counts["families with 2+ open leads"] == 0
        and counts["submissions inside the double-submit window"] == 0
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
