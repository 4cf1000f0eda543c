"""The staff dashboard of a big school: how long the home page and the funnel take to
render, and the plan of the slowest statement.

One institution with 100,000 contacts (each with a child and a first touch), 300,000 leads
(three per family over the year: the first two closed, enrolled or lost), 1,000,000 timeline
rows (the leads' stage changes and notes), 50,000 payments (5% refunded), 20 trial courses
with 60,000 booked places, 5 groups with 20,000 members and 200,000 days of activity; and
20 small institutions beside it (1% of that each). Rows go in by INSERT ... SELECT
generate_series, then everything is VACUUMed and ANALYZEd, as autovacuum keeps a production
database (this machine's PostgreSQL runs without it): planner statistics, and the
visibility map that lets a count be read from an index alone.

Each page is rendered in this process through Flask's test client as the school's owner
(no HTTP server: what is measured is the page's own work, its SQL and its templates),
twice to warm up, then --loads times; p50 and p95 are printed with the figure of a
hello-world Flask view rendered the same way in the same run. Then every statement of one
load of each page is timed, the slowest one is shown with EXPLAIN (ANALYZE, BUFFERS), and
every sequential scan of a tenant table in those statements' plans is listed with the rows
it read and the rows its filter threw away (at most the other institutions' rows it
read: none is what "no query scans another institution's rows" asks).

    .venv/bin/python bench/dashboard.py            # database cohort_dash_bench (recreated)
    .venv/bin/python bench/dashboard.py --loads 50 --scale 0.1
    .venv/bin/python bench/dashboard.py --reuse     # measure again, same data
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import SECRET_KEY, fresh_app  # noqa: E402

DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/cohort_dash_bench"
REDIS = "redis://127.0.0.1:6379/13"
# Per unit of --scale: the big school's figures (the small ones have 1% each).
CONTACTS, LEADS_PER_CONTACT, EVENTS, PAYMENTS = 100_000, 3, 1_000_000, 50_000
TRIAL_SEATS, MEMBERS, ACTIVITY = 60_000, 20_000, 200_000
SMALL_SCHOOLS, SMALL_SHARE = 20, 0.01
FAMILY_PROGRESS_REVISION = "c36f80082ad2"

GROW = """
SELECT setseed(0.42);

INSERT INTO contacts (institution_id, parent_name, phone, referral_code, staff_edited,
                      created_at, updated_at)
SELECT :i, 'Family ' || g, '+86137' || lpad(g::text, 8, '0'), 'r' || g, '[]',
       t, t
FROM (SELECT g, now() - random() * interval '365 days' AS t
      FROM generate_series(1, :contacts) g) s;

INSERT INTO students (institution_id, contact_id, name, created_at)
SELECT :i, id, 'Child of ' || parent_name, created_at FROM contacts WHERE institution_id = :i;

INSERT INTO contact_touches (institution_id, contact_id, kind, ref, referral_code, utm_source,
                             utm_medium, utm_campaign, referrer, created_at)
SELECT :i, id,
       CASE WHEN id % 10 < 6 THEN 'form' WHEN id % 10 < 8 THEN 'campaign'
            WHEN id % 10 = 8 THEN 'course' ELSE 'staff' END,
       CASE WHEN id % 10 < 6 THEN 'form-' || (id % 4) WHEN id % 10 < 8 THEN :gb_code END,
       CASE WHEN id % 17 = 0 THEN 'friend' || (id % 100) END,
       (ARRAY['wechat', 'douyin', 'xiaohongshu', NULL])[1 + id % 4],
       (ARRAY['social', 'video', NULL])[1 + id % 3],
       (ARRAY['spring', 'summer', NULL, NULL])[1 + id % 4],
       (ARRAY['https://mp.weixin.qq.com/s/abc', 'https://www.douyin.com/video/1', NULL,
              'https://www.baidu.com/s?wd=maths'])[1 + id % 4],
       created_at
FROM contacts WHERE institution_id = :i;

UPDATE contacts c SET first_touch_id = t.id, latest_touch_id = t.id
FROM contact_touches t
WHERE t.contact_id = c.id AND c.institution_id = :i AND t.institution_id = :i;

INSERT INTO leads (institution_id, contact_id, stage, owner_id, source, lost_reason,
                   created_at, updated_at, closed_at)
SELECT :i, contact_id, stage, (:owners)[1 + (contact_id + k) % 3], 'wechat',
       CASE WHEN stage = 'lost' THEN (ARRAY['Price', 'No response', 'Too far away'])[1 + k % 3] END,
       t, t, CASE WHEN stage IN ('enrolled', 'lost') THEN least(now(), t + interval '5 days') END
FROM (
  SELECT c.id AS contact_id, k,
         least(now(), c.created_at + (k - 1) * interval '20 days') AS t,
         CASE WHEN k < :per THEN (CASE WHEN random() < 0.3 THEN 'enrolled' ELSE 'lost' END)
              ELSE (ARRAY['new', 'contacted', 'trial_booked', 'trial_attended', 'enrolled',
                          'lost'])[1 + floor(random() * 6)::int] END AS stage
  FROM contacts c CROSS JOIN generate_series(1, :per) k
  WHERE c.institution_id = :i
) s;

INSERT INTO contact_events (institution_id, contact_id, kind, data, created_at)
SELECT :i, l.contact_id, 'lead',
       json_build_object('lead', l.id,
                         'to', (ARRAY['new', 'contacted', 'trial_booked', 'trial_attended',
                                      'enrolled'])[j]),
       least(now(), l.created_at + (j - 1) * interval '1 day')
FROM leads l CROSS JOIN LATERAL generate_series(1, CASE l.stage
    WHEN 'new' THEN 1 WHEN 'contacted' THEN 2 WHEN 'trial_booked' THEN 3
    WHEN 'trial_attended' THEN 4 WHEN 'enrolled' THEN 5 ELSE 1 + l.id % 3 END) j
WHERE l.institution_id = :i;

INSERT INTO contact_events (institution_id, contact_id, kind, data, created_at)
SELECT :i, contact_id, 'lead',
       json_build_object('lead', id, 'to', 'lost', 'reason', lost_reason), closed_at
FROM leads WHERE institution_id = :i AND stage = 'lost';

INSERT INTO contact_events (institution_id, contact_id, kind, data, created_at)
SELECT :i, (SELECT min(id) FROM contacts WHERE institution_id = :i) + (g % :contacts), 'note',
       json_build_object('text', 'Called back'),
       now() - random() * interval '365 days'
FROM generate_series(1, greatest(0, :events - (SELECT count(*) FROM contact_events
                                                WHERE institution_id = :i))) g;

INSERT INTO payments (institution_id, purpose, reference, contact_id, amount, currency,
                      is_manual_capture, status, created_at, updated_at, pay_by, authorised_at,
                      captured_at, stripe_check_pending)
SELECT :i, 'course_registration', g,
       (SELECT min(id) FROM contacts WHERE institution_id = :i) + (g % :contacts), 19900, 'CNY',
       false,
       status, t, t, t + interval '15 minutes',
       CASE WHEN status <> 'pending' THEN t END,
       CASE WHEN status IN ('captured', 'refunded') THEN t END, false
FROM (SELECT g, now() - random() * interval '365 days' AS t,
             CASE WHEN g % 20 = 0 THEN 'refunded' WHEN g % 50 = 1 THEN 'pending'
                  WHEN g % 50 = 2 THEN 'authorised' ELSE 'captured' END AS status
      FROM generate_series(1, :payments) g) s;

INSERT INTO payment_transitions (institution_id, payment_id, from_status, to_status, cause,
                                 created_at)
SELECT :i, id, 'pending', 'captured', 'bench', captured_at
FROM payments WHERE institution_id = :i AND captured_at IS NOT NULL;

INSERT INTO payment_transitions (institution_id, payment_id, from_status, to_status, cause,
                                 created_at)
SELECT :i, id, 'captured', 'refunded', 'bench', least(now(), captured_at + interval '2 days')
FROM payments WHERE institution_id = :i AND status = 'refunded';

INSERT INTO lessons (institution_id, course_id, starts_at, duration_minutes, status,
                     schedule_version, taken_seats, created_at)
SELECT :i, c.id,
       date_trunc('day', now()) - (n * 7) * interval '1 day' + interval '11 hours', 60,
       'scheduled', 1, 0, now() - interval '400 days'
FROM courses c CROSS JOIN generate_series(0, 51) n
WHERE c.institution_id = :i AND c.kind = 'trial';

INSERT INTO enrolments (institution_id, code, course_id, contact_id, student_id, source,
                        status, created_at)
SELECT :i, 'e' || s.id, (SELECT min(id) FROM courses WHERE institution_id = :i) + s.id % 20,
       s.contact_id, s.id, 'form', 'active', s.created_at
FROM students s WHERE s.institution_id = :i AND s.id % 10 < 6
LIMIT :seats;

INSERT INTO seats (institution_id, lesson_id, enrolment_id, status, queued_at, attendance,
                   created_at)
SELECT :i, l.id, e.id, 'booked', e.created_at,
       (ARRAY['present', 'late', 'absent', NULL])[1 + e.id % 4], e.created_at
FROM enrolments e
JOIN LATERAL (SELECT id FROM lessons
              WHERE course_id = e.course_id AND institution_id = :i
              ORDER BY abs(extract(epoch FROM starts_at - e.created_at)) LIMIT 1) l ON true
WHERE e.institution_id = :i;

INSERT INTO groups (institution_id, code, kind, title, rules, needs_approval, link_outcome,
                    phone_outcome, wechat_outcome, keyword_outcome, qr_outcome,
                    allowed_domains, keywords, flood_posts, new_member_mute_minutes,
                    strike_mute_hours, created_at, updated_at)
SELECT :i, 'group-' || g, 'class', 'Class group ' || g, '', false, 'hold', 'hold', 'hold',
       'block', 'hold', '[]', '[]', 5, 0, 24, now() - interval '400 days', now()
FROM generate_series(1, 5) g;

INSERT INTO group_members (institution_id, group_id, contact_id, role, status, joined_via,
                           strikes, joined_at)
SELECT :i, (SELECT min(id) FROM groups WHERE institution_id = :i) + g % 5,
       (SELECT min(id) FROM contacts WHERE institution_id = :i) + g, 'member', 'active', 'link',
       0,
       now() - random() * interval '120 days'
FROM generate_series(0, :members - 1) g;

INSERT INTO member_activity (institution_id, group_id, member_id, day, kind)
SELECT :i, m.group_id, m.id, (now() - (g / :members) * interval '1 day')::date, 'viewed'
FROM generate_series(0, :activity - 1) g
JOIN group_members m ON m.institution_id = :i
 AND m.id = (SELECT min(id) FROM group_members WHERE institution_id = :i) + g % :members
ON CONFLICT DO NOTHING;
"""


def grow(connection, institution_id: int, owners: list[int], scale: float) -> None:
    from sqlalchemy import text

    contacts = max(int(CONTACTS * scale), 10)
    values = {
        "i": institution_id,
        "contacts": contacts,
        "per": LEADS_PER_CONTACT,
        "events": int(EVENTS * scale),
        "payments": max(int(PAYMENTS * scale), 1),
        "seats": int(TRIAL_SEATS * scale),
        "members": max(int(MEMBERS * scale), 5),
        "activity": int(ACTIVITY * scale),
        "owners": owners,
        "gb_code": f"gb-{institution_id}",
    }
    for statement in GROW.split(";\n"):
        if statement.strip():
            connection.execute(text(statement), values)
    family_progress_backfill(connection, institution_id)


def family_progress_backfill(connection, institution_id: int) -> None:
    """The funnel's rows (contacts' FamilyProgress) of the generated families, written by
    the backfill of the migration that brought them, as an upgrade writes them for the
    families that were there before: the rows are generated by SQL, not by the services
    that keep them."""
    from app.migrate import revision_module

    revision_module(FAMILY_PROGRESS_REVISION).backfill(connection, institution_id)


def make_school(name: str, scale: float):
    """An institution, its owner and two consultants, grown to `scale`; returns
    (institution id, owner's auth token)."""
    from app.accounts import services as accounts
    from app.accounts.models import Role
    from app.courses import services as courses
    from app.courses.models import CourseKind
    from app.extensions import db
    from app.institutions import services as institutions

    institution = institutions.create_institution(
        name=name,
        slug=name.lower().replace(" ", "-"),
        timezone="Asia/Shanghai",
        currency="CNY",
        locale="zh_CN",
    )
    db.session.flush()
    users = []
    for role in (Role.OWNER, Role.STAFF, Role.STAFF):
        email = f"{role}{len(users)}@{institution.slug}.example"
        user = accounts.create_user(email, str(role), "bench-password-1")
        accounts.add_membership(institution, user, role)
        users.append(user)
    for n in range(20):  # through the service: the columns' defaults are the model's
        courses.save_course(
            institution,
            None,
            title=f"Trial {n + 1}",
            kind=CourseKind.TRIAL,
            capacity=5000,
            price_amount=0,
        )
    db.session.flush()
    grow(db.session.connection(), institution.id, [u.id for u in users], scale)
    db.session.commit()
    return institution.id, users[0].auth_token


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def timed_loads(client, path: str, loads: int) -> list[float]:
    for _ in range(2):
        assert client.get(path).status_code == 200, path
    times = []
    for _ in range(loads):
        start = time.perf_counter()
        response = client.get(path)
        times.append((time.perf_counter() - start) * 1000)
        assert response.status_code == 200, path
    return times


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DATABASE)
    parser.add_argument("--redis", default=REDIS)
    parser.add_argument("--loads", type=int, default=20)
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument(
        "--reuse", action="store_true", help="measure the data of an earlier run (no reload)"
    )
    args = parser.parse_args()

    from flask import Flask
    from sqlalchemy import event, text

    from app.extensions import db

    config = {"SECRET_KEY": SECRET_KEY, "RATELIMIT_ENABLED": False}
    started = time.perf_counter()
    if args.reuse:  # the data of an earlier run, as it is
        from app import create_app

        app = create_app({"DATABASE_URL": args.database, "REDIS_URL": args.redis, **config})
    else:
        app = fresh_app(args.database, args.redis, **config)
    with app.app_context():
        if args.reuse:
            big, token = db.session.execute(
                text(
                    "SELECT i.id, u.auth_token FROM institutions i JOIN memberships m"
                    " ON m.institution_id = i.id AND m.role = 'owner' JOIN users u"
                    " ON u.id = m.user_id WHERE i.slug = 'big-school'"
                )
            ).one()
        else:
            big, token = make_school("Big School", args.scale)
            for n in range(SMALL_SCHOOLS):
                make_school(f"Small School {n + 1}", args.scale * SMALL_SHARE)
        with db.engine.connect() as connection:
            counts = {
                table: connection.execute(
                    text(f"SELECT count(*) FROM {table} WHERE institution_id = :i"), {"i": big}
                ).scalar()
                for table in (
                    "contacts",
                    "leads",
                    "contact_events",
                    "payments",
                    "seats",
                    "member_activity",
                )
            }
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    print(f"data loaded and analysed in {time.perf_counter() - started:.0f} s")
    print("big school:", ", ".join(f"{k} {v:,}" for k, v in counts.items()))

    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = token
        session["_fresh"] = True
    slug = "big-school"
    pages = {
        "home (30 days)": f"/staff/{slug}/",
        "funnel (30 days)": f"/staff/{slug}/dashboard/funnel",
        "home (90 days)": f"/staff/{slug}/?days=90",
        "funnel (90 days)": f"/staff/{slug}/dashboard/funnel?days=90",
        "community (30 days)": f"/staff/{slug}/dashboard/community",
    }
    hello = Flask("hello")
    hello.add_url_rule("/", "hello", lambda: "Hello, World!")
    hello_times = timed_loads(hello.test_client(), "/", args.loads)
    print(f"\nrender time over {args.loads} loads (in-process test client)")
    print(f"{'':<24}{'p50 ms':>9}{'p95 ms':>9}{'max ms':>9}{'x hello p50':>13}")
    hello_p50 = statistics.median(hello_times)
    print(
        f"{'hello-world':<24}{hello_p50:>9.2f}{percentile(hello_times, 0.95):>9.2f}"
        f"{max(hello_times):>9.2f}{1:>13.0f}"
    )
    for name, path in pages.items():
        times = timed_loads(client, path, args.loads)
        p50 = statistics.median(times)
        print(
            f"{name:<24}{p50:>9.1f}{percentile(times, 0.95):>9.1f}{max(times):>9.1f}"
            f"{p50 / hello_p50:>13.0f}"
        )

    sent: list[tuple[float, str, object, str]] = []
    current = {"page": ""}

    def before(conn, cursor, statement, parameters, context, executemany):
        conn.info["started"] = time.perf_counter()

    def after(conn, cursor, statement, parameters, context, executemany):
        elapsed = (time.perf_counter() - conn.info.pop("started")) * 1000
        sent.append((elapsed, statement, parameters, current["page"]))

    event.listen(db.engine, "before_cursor_execute", before)
    event.listen(db.engine, "after_cursor_execute", after)
    for name, path in list(pages.items())[:2]:
        current["page"] = name
        client.get(path)
    event.remove(db.engine, "before_cursor_execute", before)
    event.remove(db.engine, "after_cursor_execute", after)

    elapsed, statement, parameters, page = max(sent, key=lambda item: item[0])
    print(
        f"\n{len(sent)} statements in one load of the home page and the funnel; slowest "
        f"{elapsed:.1f} ms ({page}):\n"
    )
    with app.app_context(), db.engine.connect() as connection:
        # As the pages plan them (queries.plan_as_reports).
        connection.exec_driver_sql("SET jit = off")
        connection.exec_driver_sql("SET random_page_cost = 1.1")
        plan = connection.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
        print("\n".join(row[0] for row in plan))
        scans = []
        for _elapsed, other, other_parameters, other_page in sent:
            if not other.lstrip().upper().startswith("SELECT"):
                continue
            (plan,) = connection.exec_driver_sql(
                "EXPLAIN (ANALYZE, FORMAT JSON) " + other, other_parameters
            ).scalar()
            scans += [(other_page, *scan) for scan in tenant_seq_scans(plan["Plan"])]
    print("\nsequential scans of tenant tables in those statements:", "none" if not scans else "")
    for page, table, read, removed in scans:
        print(f"  {page}: {table}: {read:,} rows read, {removed:,} thrown away by the filter")


def tenant_seq_scans(node: dict):
    """(table, rows read, rows its filter threw away) of every sequential scan of a tenant
    table in a JSON plan."""
    from app.db import Base

    table = node.get("Relation Name")
    if node["Node Type"] == "Seq Scan" and "institution_id" in Base.metadata.tables[table].c:
        loops = node.get("Actual Loops", 1)
        removed = node.get("Rows Removed by Filter", 0) * loops
        yield table, node["Actual Rows"] * loops + removed, removed
    for child in node.get("Plans", ()):
        yield from tenant_seq_scans(child)


if __name__ == "__main__":
    main()
