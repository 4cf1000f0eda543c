"""Bulk data for the benchmarks: an institution as big as a busy school's after a year
(times --scale), and --others institutions beside it in the same database, so that each
benchmark can show its figure holds as the data grows.

One unit of scale is 1,000 families (contact, child, first touch, lead and a form
submission each), 10 courses of 5 lessons, and a published group buy with 300 teams
waiting for members. Rows go in with bulk INSERTs, then the tables are ANALYZEd (this
machine's PostgreSQL runs without autovacuum; production keeps it on).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, text

FAMILIES, COURSES, LESSONS_PER_COURSE, TEAMS = 1000, 10, 5, 300


@dataclass
class Grown:
    """What grow() made that a benchmark may open: the busy group buy, one of its teams,
    one of the courses, the form with the submissions."""

    group_buy_code: str
    team_code: str
    course_code: str
    form_code: str


def grow(institution, scale: int, form=None) -> Grown:
    """Add `scale` units of data to the institution (its submissions go to `form`, or to
    a form of their own), committed."""
    from app.campaigns.models import CampaignStatus, GroupBuy, Team, TeamMember
    from app.contacts.models import Contact, ContactTouch, SourceKind, Student
    from app.courses.models import Course, CourseKind, Lesson
    from app.db import utcnow
    from app.extensions import db
    from app.leads import services as leads
    from app.leads.models import FormSubmission, Lead
    from app.tenancy import bound

    def bulk(model, rows: list[dict]) -> list[int]:
        if not rows:
            return []
        statement = insert(model).returning(model.id, sort_by_parameter_order=True)
        return list(db.session.scalars(statement, rows))

    inst = institution.id
    now = utcnow()
    with bound(institution):
        if form is None:
            form = leads.save_form(
                institution,
                None,
                title="Open day",
                intro=None,
                fields=leads.default_fields(),
                consent_text=None,
                thank_you_message=None,
                redirect_url=None,
                is_open=True,
                closes_at=None,
                submission_cap=None,
            )
            db.session.flush()
        families = scale * FAMILIES
        phones = [f"+86137{n:08d}" for n in range(families)]
        contacts = bulk(
            Contact,
            [
                {"institution_id": inst, "parent_name": f"Family {n}", "phone": phones[n]}
                for n in range(families)
            ],
        )
        students = bulk(
            Student,
            [
                {"institution_id": inst, "contact_id": c, "name": f"Child {n}"}
                for n, c in enumerate(contacts)
            ],
        )
        bulk(
            ContactTouch,
            [
                {"institution_id": inst, "contact_id": c, "kind": SourceKind.FORM, "ref": form.code}
                for c in contacts
            ],
        )
        bulk(Lead, [{"institution_id": inst, "contact_id": c} for c in contacts])
        bulk(
            FormSubmission,
            [
                {
                    "institution_id": inst,
                    "form_id": form.id,
                    "contact_id": c,
                    "phone": phones[n],
                    "answers": {"parent_name": f"Family {n}"},
                    "source": "direct",
                    "created_at": now - timedelta(days=1 + n % 300),
                }
                for n, c in enumerate(contacts)
            ],
        )
        courses = bulk(
            Course,
            [
                {
                    "institution_id": inst,
                    "kind": CourseKind.REGULAR,
                    "title": f"Course {n}",
                    "price_amount": 99900,
                    "currency": institution.currency,
                    "capacity": 20,
                }
                for n in range(scale * COURSES)
            ],
        )
        bulk(
            Lesson,
            [
                {
                    "institution_id": inst,
                    "course_id": course,
                    "starts_at": now + timedelta(days=7 + 7 * k, hours=n % 12),
                    "duration_minutes": 60,
                    "place": "Room 1",
                }
                for n, course in enumerate(courses)
                for k in range(LESSONS_PER_COURSE)
            ],
        )
        group_buy = GroupBuy(
            institution_id=inst,
            title="Spring group buy",
            description="Ten lessons at the group price.",
            course_id=courses[0],
            currency=institution.currency,
            list_price_amount=99900,
            group_price_amount=49900,
            team_size=3,
            team_hours=24,
            starts_at=now - timedelta(hours=2),
            ends_at=now + timedelta(days=7),
            status=CampaignStatus.PUBLISHED,
            published_at=now - timedelta(hours=2),
        )
        db.session.add(group_buy)
        db.session.flush()
        teams = scale * TEAMS
        team_ids = bulk(
            Team,
            [
                {
                    "institution_id": inst,
                    "group_buy_id": group_buy.id,
                    "team_size": 3,
                    "member_count": 1,
                    "opened_at": now - timedelta(minutes=n % 600),
                    "expires_at": now + timedelta(hours=23, minutes=-(n % 600)),
                }
                for n in range(teams)
            ],
        )
        bulk(
            TeamMember,
            [
                {
                    "institution_id": inst,
                    "team_id": team,
                    "contact_id": contacts[n % families],
                    "student_id": students[n % families],
                    "is_leader": True,
                    "price_amount": 49900,
                    "status": "authorised",
                }
                for n, team in enumerate(team_ids)
            ],
        )
        grown = Grown(
            group_buy_code=group_buy.code,
            team_code=db.session.get(Team, team_ids[0]).code,
            course_code=db.session.get(Course, courses[0]).code,
            form_code=form.code,
        )
        db.session.commit()
    return grown


def other_institutions(count: int) -> None:
    """`count` other institutions with one unit of data each, committed."""
    from tests.factories import make_institution

    for _ in range(count):
        grow(make_institution(), 1)


def analyze() -> None:
    """Planner statistics for what was just loaded."""
    from app.extensions import db

    with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(text("ANALYZE"))


def load(args, institution, form=None) -> Grown:
    """What the --scale and --others options of a benchmark ask for."""
    grown = grow(institution, args.scale, form)
    other_institutions(args.others)
    analyze()
    return grown
