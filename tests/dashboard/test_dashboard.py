"""The dashboard on a hand-built school whose every figure is known in advance.

54 new families in the last few days: 41 from form A (31 with utm_source=wechat, 10 with
douyin; one of them arrived today), 10 from a group buy, 3 referred by another family
(through form B). 24 were contacted (20 by staff, 4 by booking a trial straight away), 12
booked a trial (14 places: two families took both lessons), 9 came (7 present, 2 late; one
was absent), 4 enrolled and paid (one payment refunded since), 5 were lost (3 for the
price, 2 for no response). A second school beside it, with data of every kind, changes
none of these figures.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, time, timedelta

import pytest
import time_machine
from sqlalchemy import delete, select

from app.accounts.models import Role
from app.campaigns.models import MemberStatus, Team, TeamMember
from app.contacts import services as contacts
from app.contacts.models import FamilyProgress, SourceKind
from app.courses import services as courses
from app.courses.models import Attendance, CourseKind, Seat
from app.dashboard import queries
from app.dashboard.models import Period
from app.db import utcnow
from app.extensions import db
from app.groups import services as groups
from app.groups.models import PostStatus
from app.leads import services as leads
from app.leads.models import Lead, Stage
from app.migrate import revision_module
from app.payments import services as payments
from app.payments.models import Payment, PaymentStatus
from app.tenancy import bound
from tests.factories import make_course, make_form, make_group_buy, make_institution, make_member
from tests.helpers import login

PRICE = 19900
FAMILY_PROGRESS_REVISION = "c36f80082ad2"  # the funnel's rows, and their backfill


def at(institution, days: int, clock: time) -> datetime:
    """`clock` on the local day `days` from today, as UTC."""
    today = datetime.now(institution.zone).date()
    local = datetime.combine(today + timedelta(days=days), clock, tzinfo=institution.zone)
    return local.astimezone(UTC)


def family(institution, n: int, touch, owner, when: datetime):
    """A family first seen at `when` through `touch`, with its lead owned by `owner`."""
    with time_machine.travel(when, tick=False):
        contact, _ = contacts.find_or_create_contact(
            institution,
            phone=f"1390000{n:04d}",
            details=contacts.ContactDetails(
                parent_name=f"Parent {n}", students=[contacts.StudentDetails(f"Kid {n}")]
            ),
            touch=touch,
        )
        lead = leads.create_lead(institution, contact, source=touch.utm_source)
        if owner is not None:
            leads.assign_leads([lead], owner, None)
        db.session.commit()
    return contact, lead


def pay(institution, contact, when: datetime, to: tuple[PaymentStatus, ...]) -> Payment:
    with time_machine.travel(when, tick=False):
        payment = Payment(
            institution_id=institution.id,
            purpose="dashboard-test",  # no handler: nothing else moves
            reference=contact.id,
            contact_id=contact.id,
            amount=PRICE,
            currency=institution.currency,
            pay_by=when + timedelta(minutes=15),
        )
        db.session.add(payment)
        db.session.flush()
        for status in to:
            payments.transition(payment, status, "test")
        db.session.commit()
    return payment


def build_school(institution, owner, *, small: bool = False) -> dict:
    """The school of the module docstring (with `small`, a few families of every kind, for
    the other institution)."""
    s1 = make_member(institution, Role.STAFF)
    s2 = make_member(institution, Role.STAFF)
    form_a = make_form(institution, title="Form A")
    form_b = make_form(institution, title="Form B")
    group_buy = make_group_buy(institution)
    day0 = at(institution, -3, time(10, 0))  # every family but one arrives then
    starts = [at(institution, -1, time(9, 0)), at(institution, 0, time(19, 0))]
    with time_machine.travel(day0, tick=False):
        trial = make_course(institution, starts=starts, kind=CourseKind.TRIAL, capacity=20)
    lesson1, lesson2 = trial.lessons
    counts = (4, 2, 1) if small else (40, 10, 3)
    with bound(institution):
        fam: dict[str, tuple] = {}
        for n in range(1, counts[0] + 1):
            source = "wechat" if n <= 30 else "douyin"
            touch = contacts.Touch(SourceKind.FORM, form_a.code, utm_source=source)
            fam[f"F{n}"] = family(institution, n, touch, s1, day0)
        for n in range(1, counts[1] + 1):
            touch = contacts.Touch(SourceKind.CAMPAIGN, group_buy.code)
            fam[f"G{n}"] = family(institution, 100 + n, touch, s2, day0)
        for n in range(1, counts[2] + 1):
            touch = contacts.Touch(SourceKind.FORM, form_b.code, referral_code="friendcode")
            fam[f"R{n}"] = family(institution, 200 + n, touch, owner, day0)
        if small:
            db.session.commit()
            return {"families": fam}
        touch = contacts.Touch(SourceKind.FORM, form_a.code, utm_source="wechat")
        fam["T1"] = family(institution, 300, touch, s1, at(institution, 0, time(9, 0)))
        # Two families of the previous period (40 days ago): compared with, not counted.
        for n in (1, 2):
            touch = contacts.Touch(SourceKind.FORM, form_a.code)
            family(institution, 400 + n, touch, s1, at(institution, -40, time(10, 0)))

        with time_machine.travel(day0 + timedelta(hours=2), tick=False):
            for n in range(1, 21):
                leads.move_lead(fam[f"F{n}"][1], Stage.CONTACTED, s1)
            for n, reason in ((21, "Price"), (22, "Price"), (23, "Price")):
                leads.move_lead(fam[f"F{n}"][1], Stage.LOST, s1, reason)
            for n in (24, 25):
                leads.move_lead(fam[f"F{n}"][1], Stage.LOST, s1, "No response")
            db.session.commit()

        booked = [f"F{n}" for n in range(1, 9)] + ["G1", "G2", "G3", "R1"]
        with time_machine.travel(day0 + timedelta(days=1), tick=False):
            for key in booked:
                contact = fam[key][0]
                chosen = [lesson1.id, lesson2.id] if key in ("F1", "F2") else [lesson1.id]
                courses.register(
                    institution,
                    trial,
                    chosen,
                    contacts.FamilyDetails(
                        parent_name=contact.parent_name,
                        phone=contact.phone,
                        student_name=contact.students[0].name,
                    ),
                    contacts.Touch(SourceKind.COURSE, trial.code),
                )
                db.session.commit()

        attended = {f"F{n}": Attendance.PRESENT for n in range(1, 6)}
        attended.update({"F6": Attendance.LATE, "G1": Attendance.PRESENT})
        attended.update({"G2": Attendance.LATE, "R1": Attendance.PRESENT, "F7": Attendance.ABSENT})
        with time_machine.travel(day0 + timedelta(days=2), tick=False):
            for key, mark in attended.items():
                seat = db.session.scalar(
                    select(Seat)
                    .join(Seat.enrolment)
                    .where(Seat.lesson_id == lesson1.id)
                    .where(Seat.enrolment.has(contact_id=fam[key][0].id))
                )
                courses.mark_attendance(seat, mark, owner)
            db.session.commit()

        with time_machine.travel(day0 + timedelta(days=3), tick=False):
            for key in ("F1", "F2", "G1", "R1"):
                leads.advance_lead(fam[key][0], Stage.ENROLLED, owner)
            db.session.commit()
        paid = [
            pay(institution, fam[k][0], day0 + timedelta(days=3), (PaymentStatus.CAPTURED,))
            for k in ("F1", "F2", "G1", "R1")
        ]
        with time_machine.travel(day0 + timedelta(days=3, hours=1), tick=False):
            payments.transition(paid[3], PaymentStatus.REFUNDED, "test refund")
            db.session.commit()
        pay(institution, fam["F9"][0], utcnow(), ())  # a checkout in progress
        hold = pay(institution, fam["G4"][0], utcnow(), (PaymentStatus.AUTHORISED,))

        # A team of the group buy, one family in it, that expires in 5 hours.
        team = Team(
            institution_id=institution.id,
            group_buy_id=group_buy.id,
            team_size=3,
            member_count=1,
            expires_at=utcnow() + timedelta(hours=5),
        )
        db.session.add(team)
        db.session.flush()
        db.session.add(
            TeamMember(
                institution_id=institution.id,
                team_id=team.id,
                contact_id=fam["G4"][0].id,
                student_id=fam["G4"][0].students[0].id,
                payment_id=hold.id,
                is_leader=True,
                price_amount=PRICE,
                status=MemberStatus.AUTHORISED,
            )
        )
        # My follow-ups: one overdue (09:00 today), one due tonight (20:00).
        fam["R2"][1].next_contact_at = at(institution, 0, time(9, 0))
        fam["R3"][1].next_contact_at = at(institution, 0, time(20, 0))
        # A post held for review (a link: the group's rule holds it).
        group = groups.create_group(institution, title="Parents of Maths", rules="Be kind.")
        member = groups.add_member(institution, group, fam["F1"][0])
        post = groups.write_post(institution, group, member, "See https://ads.example.com")
        assert post.status == PostStatus.HELD
        db.session.commit()
    return {"families": fam, "form_a": form_a, "form_b": form_b, "group_buy": group_buy}


@pytest.fixture
def school(institution, owner):
    """The school as built, seen at 15:00 of its day (the follow-up of 09:00 is then
    overdue and the one of 20:00 due), whatever hour the suite runs at."""
    with time_machine.travel(at(institution, 0, time(15, 0)), tick=False):
        other = make_institution()
        db.session.commit()
        other_owner = make_member(other, Role.OWNER)
        build_school(other, other_owner, small=True)
        yield build_school(institution, owner)


def figure(page: str, name: str) -> str:
    match = re.search(
        rf'data-(?:figure|stage)="{name}".*?<span class="kpi-value">(.*?)</span>', page, re.S
    )
    assert match, name
    return match.group(1).strip()


def csv_rows(response) -> list[list[str]]:
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeff")
    return list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))


def test_the_home_page_shows_today_and_the_period_as_built(owner_client, institution, school):
    page = owner_client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    # Today.
    assert figure(page, "trial_lessons") == "1"
    assert "2 seats booked, attendance taken for 0" in page
    assert figure(page, "new_leads") == "1"
    assert figure(page, "follow_ups") == "2"
    assert "1 due today, 1 overdue" in page
    assert figure(page, "failed_messages") == "0"
    assert figure(page, "payments_waiting") == "2"
    assert figure(page, "teams_expiring") == "1"
    assert figure(page, "held_posts") == "1"
    # The last 30 days, against the 30 before.
    assert figure(page, "contacts") == "54"
    assert figure(page, "leads") == "54"
    assert figure(page, "trials_booked") == "14"
    assert figure(page, "trials_attended") == "9"
    assert figure(page, "enrolments") == "4"
    assert figure(page, "revenue") == "CN¥597.00"  # 4 x 199 captured, 199 refunded
    assert "+2600%" in page  # 54 contacts against 2
    assert page.count("<svg") >= 2 and "<script" not in page.split("<footer")[0]
    # Live campaigns: the group buy (1 team opened, still forming) is there.
    assert "Summer maths group buy" in page

    base = f"/staff/{institution.slug}/dashboard/export.csv?page=home"
    totals = {row[0]: row[1:] for row in csv_rows(owner_client.get(f"{base}&table=totals"))[1:]}
    assert totals["New contacts"] == ["54", "2", "2600"]
    assert totals["Leads"] == ["54", "2", "2600"]
    assert totals["Trials booked"] == ["14", "0", ""]
    assert totals["Trials attended"] == ["9", "0", ""]
    assert totals["Enrolments"] == ["4", "0", ""]
    assert totals["Revenue"] == ["597.00", "0.00", ""]

    daily = csv_rows(owner_client.get(f"{base}&table=daily"))
    assert daily[0] == [
        "Day",
        "New contacts",
        "Leads",
        "Trials booked",
        "Trials attended",
        "Enrolments",
        "Revenue",
    ]
    by_day = {row[0]: row[1:] for row in daily[1:]}
    assert len(by_day) == 30
    today = datetime.now(institution.zone).date()
    day = lambda n: (today + timedelta(days=n)).isoformat()  # noqa: E731
    assert by_day[day(-3)] == ["53", "53", "0", "0", "0", "0.00"]
    assert by_day[day(-2)] == ["0", "0", "14", "0", "0", "0.00"]
    assert by_day[day(-1)] == ["0", "0", "0", "9", "0", "0.00"]
    assert by_day[day(0)] == ["1", "1", "0", "0", "4", "597.00"]
    assert sum(int(row[1]) for row in daily[1:]) == 54

    lessons = csv_rows(owner_client.get(f"{base}&table=lessons"))
    assert lessons[1][1:] == ["19:00", "2", "20", "0", "0"]
    live = csv_rows(owner_client.get(f"{base}&table=campaigns"))
    assert [row[0] for row in live[1:]] == ["Summer maths group buy"]
    assert live[1][2:7] == ["1", "0", "0", "", ""]


FUNNEL = [54, 54, 24, 12, 9, 4]


def test_the_funnel_counts_each_stage_and_breaks_it_down(owner_client, institution, school):
    page = owner_client.get(f"/staff/{institution.slug}/dashboard/funnel").get_data(as_text=True)
    for stage, expected in zip(queries.STAGES, FUNNEL, strict=True):
        assert figure(page, stage) == str(expected)
    assert page.count("<svg") >= 2

    base = f"/staff/{institution.slug}/dashboard/export.csv?page=funnel"
    stages = csv_rows(owner_client.get(f"{base}&table=funnel"))
    assert [row[1] for row in stages[1:]] == [str(n) for n in FUNNEL]
    # Conversion from the stage before, in percent.
    assert [row[2] for row in stages[1:]] == ["", "100", "44", "50", "75", "44"]
    # Median hours: lead at once; contacted 2 h later (20 by staff) or at booking (4);
    # booking 22 h after contact (8) or at once (4); attended and enrolled a day apart.
    assert [row[3] for row in stages[1:]] == ["", "0.0", "2.0", "22.0", "24.0", "24.0"]

    def breakdown(name: str) -> dict[str, list[str]]:
        rows = csv_rows(owner_client.get(f"{base}&table=by_{name}"))
        return {row[0]: row[1:] for row in rows[1:]}

    assert breakdown("channel") == {
        "Lead form": ["41", "41", "20", "8", "6", "2", "5"],
        "Campaign": ["10", "10", "3", "3", "2", "1", "10"],
        "Referral": ["3", "3", "1", "1", "1", "1", "33"],
    }
    assert breakdown("form") == {
        "Form A": ["41", "41", "20", "8", "6", "2", "5"],
        "Form B": ["3", "3", "1", "1", "1", "1", "33"],
    }
    assert breakdown("campaign") == {
        "Summer maths group buy": ["10", "10", "3", "3", "2", "1", "10"]
    }
    assert breakdown("utm_source") == {
        "wechat": ["31", "31", "20", "8", "6", "2", "6"],
        "(none)": ["13", "13", "4", "4", "3", "2", "15"],
        "douyin": ["10", "10", "0", "0", "0", "0", "0"],
    }
    assert breakdown("referrer") == {"Direct or unknown": ["54", "54", "24", "12", "9", "4", "7"]}
    owners = breakdown("owner")
    assert sorted(owners.values()) == sorted(
        [
            ["41", "41", "20", "8", "6", "2", "5"],
            ["10", "10", "3", "3", "2", "1", "10"],
            ["3", "3", "1", "1", "1", "1", "33"],
        ]
    )
    lost = csv_rows(owner_client.get(f"{base}&table=lost"))
    assert lost[1:] == [["Price", "3"], ["No response", "2"]]


def test_a_number_of_the_funnel_lists_the_families_behind_it(owner_client, institution, school):
    form_a = school["form_a"]
    url = (
        f"/staff/{institution.slug}/dashboard/funnel/families"
        f"?stage=trial_attended&dimension=form&key={form_a.code}"
    )
    page = owner_client.get(url).get_data(as_text=True)
    assert "6 families" in page
    for n in range(1, 7):
        assert f"Parent {n}<" in page
    assert "Parent 7<" not in page  # absent
    rows = csv_rows(
        owner_client.get(
            f"/staff/{institution.slug}/dashboard/export.csv?page=families&stage=enrolled"
        )
    )
    assert sorted(row[0] for row in rows[1:]) == [
        "Parent 1",
        "Parent 101",
        "Parent 2",
        "Parent 201",
    ]
    assert {row[3] for row in rows[1:]} == {"Enrolled (paid)"}
    lost = owner_client.get(
        f"/staff/{institution.slug}/dashboard/funnel/families?dimension=lost&key=Price"
    ).get_data(as_text=True)
    assert "3 families" in lost and "Parent 21<" in lost


def test_another_institutions_staff_see_only_their_own_figures(client, institution, school):
    other = make_institution()
    db.session.commit()
    outsider = make_member(other, Role.OWNER)
    login(client, outsider)
    assert client.get(f"/staff/{institution.slug}/dashboard/funnel").status_code == 404
    assert client.get(f"/staff/{institution.slug}/dashboard/export.csv").status_code == 404
    page = client.get(f"/staff/{other.slug}/").get_data(as_text=True)
    assert "Get started" in page and 'data-figure="leads"' not in page  # empty: next steps
    # Keys of A's rows in B's funnel find nothing.
    url = (
        f"/staff/{other.slug}/dashboard/funnel/families?dimension=form&key={school['form_a'].code}"
    )
    assert "0 families" in client.get(url).get_data(as_text=True)


def test_a_lead_is_counted_on_the_institutions_local_day(institution):
    """Asia/Shanghai is UTC+8: 23:30 is still that day there (15:30 UTC), and 07:30 is the
    next day there although it is 23:30 of the day before in UTC."""
    with bound(institution):
        touch = contacts.Touch(SourceKind.STAFF)
        family(institution, 1, touch, None, at(institution, -2, time(23, 30)))
        family(institution, 2, touch, None, at(institution, -1, time(0, 30)))
        family(institution, 3, touch, None, at(institution, -1, time(7, 30)))
        family(institution, 4, touch, None, at(institution, -6, time(0, 0)))  # first day
        family(institution, 5, touch, None, at(institution, -7, time(23, 59)))  # before
        today = datetime.now(institution.zone).date()
        period = Period.last(7, today)
        series = queries.daily_series(institution, period)["leads"]
        assert series == {
            today - timedelta(days=6): 1,
            today - timedelta(days=2): 1,
            today - timedelta(days=1): 2,
        }
        cohort = queries.funnel(institution, period)
        assert cohort.total.counts[:2] == [4, 4]
        assert queries.funnel(institution, period.previous()).total.counts[:2] == [1, 1]


def test_an_empty_institution_sees_next_steps_marked_done_when_done(
    owner_client, institution, owner
):
    page = owner_client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    assert "Get started" in page and 'class="kpi"' not in page
    assert page.count('<li class="done">') == 0
    make_form(institution)
    page = owner_client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    assert page.count('<li class="done">') == 1
    assert re.search(r'<li class="done"><a href="[^"]*/forms/new">', page)


def test_nonsense_periods_fall_back_and_the_stylesheet_is_served(owner_client, institution):
    base = f"/staff/{institution.slug}/dashboard"
    for query in ("?days=abc", "?start=2026-13-40&end=x", "?start=2020-01-01&end=2026-01-01"):
        assert owner_client.get(f"{base}/funnel{query}").status_code == 200
    assert owner_client.get(f"{base}/funnel/families?stage=nope").status_code == 404
    assert owner_client.get(f"{base}/export.csv?page=home&table=nope").status_code == 404
    css = owner_client.get(f"{base}/charts.css")
    assert css.mimetype == "text/css" and "svg.pygal-chart" in css.get_data(as_text=True)


def test_lead_rows_of_the_school_are_as_built(institution, school):
    """The data set itself (so a change of a service shows here, not as a puzzle above)."""
    stages = db.session.scalars(
        select(Lead.stage).where(Lead.institution_id == institution.id)
    ).all()
    assert stages.count(Stage.ENROLLED) == 4 and stages.count(Stage.LOST) == 5


def test_the_funnel_rows_kept_as_families_move_are_those_the_upgrade_computes(
    institution, owner, school
):
    """Each family's funnel row (FamilyProgress), kept by the services through the school's
    story and a merge of two families, equals the row the migration's backfill computes
    from the timeline, the first touch and the newest lead, as it does for the families
    that were there before the upgrade."""
    fam = school["families"]
    survivor, duplicate = fam["G10"][0], fam["F1"][0]  # new from the group buy; enrolled
    with bound(institution):
        reached = db.session.get(FamilyProgress, duplicate.id).rank
        contacts.merge_contacts(survivor, duplicate, owner)
        db.session.commit()

        def rows() -> list[tuple]:
            table = FamilyProgress.__table__
            query = select(table).where(table.c.institution_id == institution.id)
            return sorted(tuple(row) for row in db.session.execute(query))

        kept = rows()
        assert len(kept) == 54 + 2 - 1  # the school, the previous period's two, one merged
        assert db.session.get(FamilyProgress, duplicate.id) is None
        assert db.session.get(FamilyProgress, survivor.id).rank == reached == 5
        db.session.execute(
            delete(FamilyProgress).where(FamilyProgress.institution_id == institution.id)
        )
        revision_module(FAMILY_PROGRESS_REVISION).backfill(db.session.connection(), institution.id)
        assert rows() == kept
        db.session.rollback()
