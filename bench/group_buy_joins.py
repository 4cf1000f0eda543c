"""A rush on one group buy: joins per second, latency, and whether any team took more
families than its size.

Starts Cohort under gunicorn against a throwaway PostgreSQL database and a local
localstripe, publishes a campaign with --teams teams already opened by their leaders (in
a school with --scale units of data, bench/data.py, and --others other schools), has
--families parents open the campaign's share link (untimed: each gets its session and
CSRF token), then has wrk send their joins with a test card from --connections
connections, the families spread over the teams so that every team sees more joiners
than it has seats. Each join holds money at localstripe; the losers of the race for a
team's last seats must have their hold released at once.

Prints one table (joins per second, latency percentiles, the hello-world app's figure and
the ratio) and the counts that must hold: no team with more held or paid members than its
size (over-filled teams: must be 0), every team full, one released hold per family that
held money and lost the race, and a plain refusal (422, no hold at all) for those who
arrived when the team was already full.

    python bench/group_buy_joins.py --families 300 --teams 20 --team-size 5

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated).
"""

from __future__ import annotations

import sys
from datetime import timedelta

from data import load
from harness import (
    TEST_CARD,
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
    stripe_config,
)


def prepare(args, stripe_url: str) -> tuple[str, str, list[str], int]:
    """A school, a course, a published group buy and --teams teams each opened by a
    leader whose hold succeeded; returns (slug, campaign code, team codes, campaign id)."""
    from app.campaigns import services as campaigns
    from app.campaigns.models import CampaignStatus
    from app.contacts.models import FamilyDetails, SourceKind
    from app.contacts.services import Touch
    from app.courses import services as courses
    from app.courses.models import CourseKind
    from app.db import utcnow
    from app.extensions import db
    from app.payments import services as payments
    from app.tenancy import bound
    from tests.factories import make_institution

    app = fresh_app(args.database, args.redis, **stripe_config(stripe_url))
    with app.app_context():
        institution = make_institution(slug="bench-school")
        with bound(institution):
            course = courses.save_course(
                institution, None, title="Bench course", kind=CourseKind.REGULAR, capacity=1000
            )
            courses.add_lesson(course, starts_at=utcnow() + timedelta(days=9), duration_minutes=60)
            group_buy = campaigns.save_group_buy(
                institution,
                None,
                title="Bench group buy",
                course_id=course.id,
                list_price_amount=49900,
                group_price_amount=19900,
                leader_price_amount=None,
                team_size=args.team_size,
                team_hours=24,
                starts_at=utcnow() - timedelta(hours=1),
                ends_at=utcnow() + timedelta(days=3),
                team_limit=None,
                per_contact_limit=1,
            )
            group_buy.status = CampaignStatus.PUBLISHED
            codes = []
            for n in range(args.teams):
                leader = FamilyDetails(
                    parent_name=f"Leader {n}", phone=f"138{n:08d}", student_name=f"Leader child {n}"
                )
                member = campaigns.start_join(
                    institution, group_buy, None, leader, Touch(SourceKind.CAMPAIGN)
                )
                db.session.commit()
                payments.pay(member.payment, ("4242424242424242", 12, 2030, "123"))
                db.session.commit()
                codes.append(member.team.code)
            result = institution.slug, group_buy.code, codes, group_buy.id
        load(args, institution)
    return result


# Counted for the bench's campaign only (bench/data.py adds teams of its own).
CHECKS = {
    "teams": "SELECT count(*) FROM teams WHERE group_buy_id = :gb",
    "teams full": "SELECT count(*) FROM teams WHERE group_buy_id = :gb AND status = 'succeeded'",
    "over-filled teams": (
        "SELECT count(*) FROM (SELECT m.team_id FROM team_members m JOIN teams t "
        "ON t.id = m.team_id WHERE t.group_buy_id = :gb AND m.status IN "
        "('authorised', 'captured') GROUP BY m.team_id HAVING count(*) > :size) o"
    ),
    "teams whose counter passed their size": (
        "SELECT count(*) FROM teams WHERE group_buy_id = :gb AND member_count > team_size"
    ),
    "members holding a place": (
        "SELECT count(*) FROM team_members m JOIN teams t ON t.id = m.team_id "
        "WHERE t.group_buy_id = :gb AND m.status IN ('authorised', 'captured')"
    ),
    "holds released (lost the race)": (
        "SELECT count(*) FROM team_members m JOIN payments p ON p.id = m.payment_id "
        "WHERE m.release_reason = 'team_full' AND p.status = 'released'"
    ),
    "payments still pending": "SELECT count(*) FROM payments WHERE status = 'pending'",
}


def main() -> None:
    from app.devtools.localstripe import LocalStripe

    parser = argument_parser(__doc__)
    parser.add_argument("--families", type=int, default=300)
    parser.add_argument("--teams", type=int, default=20)
    parser.add_argument("--team-size", type=int, default=5)
    args = parser.parse_args()

    stripe = LocalStripe().start()
    slug, code, teams, group_buy_id = prepare(args, stripe.url)
    hello = hello_world(args)
    joins = []
    for family in range(args.families):
        fields = {
            "parent_name": f"Parent {family}",
            "phone": f"139{family:08d}",
            "student_name": f"Child {family}",
            "consent": "y",
            **TEST_CARD,
        }
        # The campaign page always has the form; a full team's page no longer does, and
        # the point is to race for the last seats.
        joins.append(
            (f"/{slug}/gb/{code}", f"/{slug}/gb/{code}/t/{teams[family % len(teams)]}", fields)
        )
    with cohort_server(args, **stripe_config(stripe.url)) as server:
        posts = prepare_posts(server.base, joins)
        figures = send_posts(server.base, posts, args.connections)
        memory = server.memory_mib()
    stripe.stop()

    seats = args.teams * (args.team_size - 1)
    print(
        f"group-buy join POST: {args.families} families on {args.teams} teams of "
        f"{args.team_size} ({seats} seats left), paid by card (localstripe in this process)"
    )
    print(settings_line(args))
    print_table("", [("group-buy join POST", figures)], hello, "post")
    counts = count_rows(args.database, CHECKS, size=args.team_size, gb=group_buy_id)
    statuses = figures.statuses
    winners = min(seats, args.families)
    joined = statuses[302]  # held a card: won a seat, or lost the race and was released
    print_counts({**counts, "refused before any hold (team full)": statuses[422]})
    print(f"{args.server} worker memory: {', '.join(f'{m:.0f} MiB' for m in memory)}")
    ok = (
        set(statuses) <= {302, 422}
        and sum(statuses.values()) == args.families
        and counts["over-filled teams"] == 0
        and counts["teams whose counter passed their size"] == 0
        and counts["members holding a place"] == args.teams + winners
        and counts["holds released (lost the race)"] == joined - winners
        and counts["payments still pending"] == 0
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
