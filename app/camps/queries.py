"""Reads of camps: a family's day, streaks, the leaderboard and the staff's figures.

Streaks are computed from the check-in rows and the camp's days, not stored: a make-up
check-in fills its day and the streak through it is whole again, with nothing to update.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from app.camps.models import Camp, CampChild, CampTask, CheckIn
from app.contacts.models import Student
from app.db import scoped_select
from app.extensions import db
from app.groups.models import Group, GroupMember, MemberStatus
from app.institutions.models import Institution
from app.text import masked_name


def local_today(institution, now: datetime) -> date:
    return now.astimezone(institution.zone).date()


def camp_by_code(institution, code: str) -> Camp | None:
    return db.session.scalar(
        scoped_select(Camp, institution).where(Camp.code == code).options(selectinload(Camp.group))
    )


def group_camps(group: Group) -> list[Camp]:
    return list(
        db.session.scalars(
            select(Camp)
            .where(Camp.institution_id == group.institution_id, Camp.group_id == group.id)
            .order_by(Camp.starts_on.desc(), Camp.id.desc())
        )
    )


def task_for(camp: Camp, day: date) -> CampTask | None:
    return db.session.scalar(
        select(CampTask).where(CampTask.camp_id == camp.id, CampTask.day == day)
    )


def tasks(camp: Camp) -> dict[date, CampTask]:
    rows = db.session.scalars(
        select(CampTask).where(CampTask.camp_id == camp.id).order_by(CampTask.day)
    )
    return {task.day: task for task in rows}


def participants(camp: Camp) -> list[Student]:
    """The children taking part: those their family entered in the camp (or who checked
    in), while the family is still an active member of the camp's group."""
    return list(
        db.session.scalars(
            select(Student)
            .join(CampChild, CampChild.student_id == Student.id)
            .join(GroupMember, GroupMember.contact_id == CampChild.contact_id)
            .where(
                CampChild.camp_id == camp.id,
                GroupMember.group_id == camp.group_id,
                GroupMember.status == MemberStatus.ACTIVE,
            )
            .options(selectinload(Student.contact))
            .order_by(Student.id)
        )
    )


def checked_days(camp: Camp, student_ids: list[int] | None = None) -> dict[int, set[date]]:
    """The days each child checked in for (make-ups included)."""
    query = select(CheckIn.student_id, CheckIn.day).where(CheckIn.camp_id == camp.id)
    if student_ids is not None:
        query = query.where(CheckIn.student_id.in_(student_ids))
    days: dict[int, set[date]] = defaultdict(set)
    for student_id, day in db.session.execute(query):
        days[student_id].add(day)
    return days


@dataclass(frozen=True)
class Streak:
    current: int
    longest: int
    total: int


def streak(camp: Camp, days: set[date], today: date) -> Streak:
    """The run of consecutive camp days checked in, up to today. Today not yet checked in
    does not break it (the day is not over); any earlier missed day does."""
    run = longest = 0
    for day in camp.days(until=today):
        if day in days:
            run += 1
            longest = max(longest, run)
        elif day != today:
            run = 0
    return Streak(current=run, longest=longest, total=len(days))


def missed_days(camp: Camp, days: set[date], today: date) -> list[date]:
    """The camp days a make-up card can still fill: missed, before today, and at most
    `makeup_days` ago; newest first."""
    earliest = today - timedelta(days=camp.makeup_days)
    return [
        day
        for day in reversed(camp.days(until=today - timedelta(days=1)))
        if day >= earliest and day not in days
    ]


def camp_children(camp: Camp) -> dict[int, CampChild]:
    rows = db.session.scalars(select(CampChild).where(CampChild.camp_id == camp.id))
    return {row.student_id: row for row in rows}


@dataclass
class ChildStanding:
    student: Student
    streak: Streak
    days: set[date]
    makeup_used: int
    hides_name: bool
    name_shown: str = ""


@dataclass
class CampFigures:
    """What the staff's camp page shows."""

    days: list[date]
    rates: list[tuple[date, int, int]]  # day, children checked in, children taking part
    at_risk: list[ChildStanding]
    standings: list[ChildStanding] = field(default_factory=list)


def standings(camp: Camp, today: date) -> list[ChildStanding]:
    """Every child taking part, with streak and totals; the name a leaderboard shows is
    masked for a family that hides it."""
    children = participants(camp)
    days = checked_days(camp, [child.id for child in children])
    rows = camp_children(camp)
    result = []
    for child in children:
        row = rows.get(child.id)
        hides = row is not None and row.hides_name
        result.append(
            ChildStanding(
                student=child,
                streak=streak(camp, days.get(child.id, set()), today),
                days=days.get(child.id, set()),
                makeup_used=row.makeup_used if row is not None else 0,
                hides_name=hides,
                name_shown=masked_name(child.name) if hides else child.name,
            )
        )
    return result


def leaderboard(camp: Camp, today: date, by: str = "streak", limit: int = 20):
    """The top children by current streak (then total) or by total (then streak)."""
    if by == "total":
        key = lambda s: (-s.streak.total, -s.streak.current, s.student.id)  # noqa: E731
    else:
        key = lambda s: (-s.streak.current, -s.streak.total, s.student.id)  # noqa: E731
    ranked = [s for s in standings(camp, today) if s.streak.total]
    return sorted(ranked, key=key)[:limit]


def figures(camp: Camp, today: date) -> CampFigures:
    """Check-in rate per camp day so far, and the children at risk: those who missed both
    of the last two camp days before today."""
    rows = standings(camp, today)
    days = camp.days(until=today)
    rates = [(day, sum(1 for s in rows if day in s.days), len(rows)) for day in days]
    past = [day for day in days if day < today][-2:]
    at_risk = [s for s in rows if not any(day in s.days for day in past)] if len(past) == 2 else []
    return CampFigures(days=days, rates=rates, at_risk=at_risk, standings=rows)


def recent_checkins(camp: Camp, limit: int = 200) -> list[CheckIn]:
    return list(
        db.session.scalars(
            select(CheckIn)
            .where(CheckIn.camp_id == camp.id)
            .options(selectinload(CheckIn.student))
            .order_by(CheckIn.id.desc())
            .limit(limit)
        )
    )


def due_camps(now: datetime) -> list[tuple[int, int, date]]:
    """(institution id, camp id, local day) of each camp whose nudge time has come today
    and whose window is still open, across institutions (the platform's sweeper)."""
    rows = db.session.execute(
        select(Camp, Institution.timezone)
        .join(Institution, Institution.id == Camp.institution_id)
        .where(
            Camp.nudge_at.is_not(None),
            Camp.starts_on <= (now + timedelta(days=1)).date(),
            Camp.ends_on >= (now - timedelta(days=1)).date(),
        )
    )
    due = []
    for camp, zone in rows:
        local = now.astimezone(ZoneInfo(zone))
        if camp.runs_on(local.date()) and camp.nudge_at <= local.time() < camp.window_end:
            due.append((camp.institution_id, camp.id, local.date()))
    return due
