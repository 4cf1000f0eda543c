"""Load on the public lead form: throughput, latency and correctness under concurrency.

Starts Cohort under gunicorn against a throwaway PostgreSQL database, creates a school and
a form, then has many virtual parents (threads) open the form and send it, each family
several times and with its phone written in different formats. Prints submissions per
second, latency percentiles, status counts, and the correctness counts that must hold:
one contact per family, one open lead per family, no duplicate submissions inside the
double-submit window.

    python bench/form_submissions.py --requests 2000 --concurrency 16 --families 400

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated). Rate limits are switched off for the server it
starts, since every request comes from one address.
"""

from __future__ import annotations

import sys
import threading
from collections import Counter

from harness import (
    argument_parser,
    count_rows,
    fresh_app,
    latency_line,
    post_like_a_parent,
    run_clients,
)

PHONE_FORMATS = ("138 {a} {b}", "+86 138{a}{b}", "138-{a}-{b}", "+86138{a}{b}")


def prepare(database_url: str, redis_url: str) -> tuple[str, str]:
    """A fresh database with the schema, one school and one form; returns (slug, code)."""
    from app.extensions import db
    from app.leads import services as leads
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(database_url, redis_url)
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
            result = institution.slug, form.code
            db.session.commit()
    return result


def submit(base: str, family: int, attempt: int) -> tuple[int, float]:
    """One parent opens the form and sends it, with the phone written one of four ways."""
    number = f"{family:08d}"
    phone = PHONE_FORMATS[attempt % len(PHONE_FORMATS)].format(a=number[:4], b=number[4:])
    fields = {"parent_name": f"Parent {family}", "phone": phone, "subject": "Maths"}
    return post_like_a_parent(base + "?utm_source=bench", fields)


CHECKS = {
    "contacts": "SELECT count(*) FROM contacts",
    "leads": "SELECT count(*) FROM leads",
    "submissions": "SELECT count(*) FROM form_submissions",
    "families with 2+ contacts": (
        "SELECT count(*) FROM (SELECT phone FROM contacts GROUP BY phone HAVING count(*) > 1) d"
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

    slug, code = prepare(args.database, args.redis)
    lock, attempts = threading.Lock(), Counter()

    def one(base: str, i: int):
        family = 13800000 + i % args.families
        with lock:
            attempts[family] += 1
            attempt = attempts[family]
        return submit(f"{base}/{slug}/f/{code}", family, attempt)

    results, elapsed = run_clients(args, args.requests, one)
    statuses = Counter(status for status, _latency in results)
    print(
        f"requests        {args.requests} from {args.concurrency} parallel clients, "
        f"{args.families} families, gunicorn {args.workers} workers x 4 threads"
    )
    print(
        f"throughput      {args.requests / elapsed:.1f} submissions/s "
        f"({elapsed:.1f} s, each after a GET of the form)"
    )
    print(f"POST latency    {latency_line([latency for _status, latency in results])}")
    print(f"statuses        {dict(statuses)}")
    counts = count_rows(args.database, CHECKS)
    for name, value in counts.items():
        print(f"{name:<46}{value}")
    expected = min(args.families, args.requests)
    ok = (
        statuses == Counter({302: args.requests})
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
