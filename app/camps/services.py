"""Check-in camps: setting one up, checking in, make-up cards, points and nudges.

Services change state and flush; the request or job commits (see app/db.py)."""

from __future__ import annotations

import logging
from datetime import date, timedelta

from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.camps import queries
from app.camps.models import MAX_CHECKIN_LENGTH, Camp, CampChild, CampTask, CheckIn
from app.contacts.models import Contact, Student
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.groups import queries as group_queries
from app.groups import services as groups
from app.groups.models import Group, PostStatus
from app.institutions.models import Institution
from app.loyalty import queries as loyalty_queries
from app.loyalty import services as loyalty
from app.loyalty.models import STREAK_MILESTONES, PointsReason
from app.notifications import services as notifications
from app.text import masked_name
from app.urls import external_url

log = logging.getLogger(__name__)


def create_camp(institution, group: Group, **values) -> Camp:
    _check_dates(values)
    camp = Camp(institution_id=institution.id, group_id=group.id, **values)
    db.session.add(camp)
    db.session.flush()
    log.info("camp %s created in group %s (institution %s)", camp.id, group.id, institution.id)
    return camp


def update_camp(camp: Camp, **values) -> None:
    _check_dates(values)
    for name, value in values.items():
        setattr(camp, name, value)
    db.session.flush()


MAX_CAMP_DAYS = 366


def _check_dates(values: dict) -> None:
    """A camp's settings that no form field can check alone: its dates, its window, the
    nudge inside the window, and at least one day to check in on."""
    starts_on, ends_on = values["starts_on"], values["ends_on"]
    if ends_on < starts_on:
        raise ServiceError(_l("The camp ends before it starts."), field="ends_on", code="dates")
    if (ends_on - starts_on).days >= MAX_CAMP_DAYS:
        raise ServiceError(_l("A camp lasts a year at most."), field="ends_on", code="too_long")
    if values["window_end"] <= values["window_start"]:
        raise ServiceError(
            _l("The daily window ends before it starts."), field="window_end", code="window"
        )
    nudge_at = values.get("nudge_at")
    if nudge_at is not None and not values["window_start"] <= nudge_at < values["window_end"]:
        raise ServiceError(
            _l("The reminder must go out while check-ins are open."),
            field="nudge_at",
            code="nudge_outside_window",
        )
    weekdays = values.get("weekdays") or []
    if not Camp(starts_on=starts_on, ends_on=ends_on, weekdays=weekdays).days():
        raise ServiceError(
            _l("None of the chosen weekdays falls between the camp's dates."),
            field="weekdays",
            code="no_days",
        )


def set_task(
    institution,
    camp: Camp,
    day: date,
    prompt: str,
    file: tuple[str, str, bytes] | None = None,
) -> CampTask:
    """The day's task (one per day: saving again replaces it). `file` is (name, type,
    bytes) of a picture or sheet for the family to use."""
    if not camp.runs_on(day):
        raise ServiceError(_l("The camp does not run on that day."), field="day", code="no_day")
    task = queries.task_for(camp, day) or CampTask(
        institution_id=institution.id, camp_id=camp.id, day=day
    )
    task.prompt = prompt
    if file is not None:
        task.file_name, task.file_type, task.file_data = file
    db.session.add(task)
    db.session.flush()
    return task


# --- checking in -----------------------------------------------------------------------------


def check_in(
    institution,
    camp: Camp,
    contact: Contact,
    student: Student,
    body: str,
    *,
    pictures: list[bytes] = (),
    day: date | None = None,
):
    """A child's check-in for today (or, with `day`, a make-up for a missed day): also a
    post in the group's feed, through the group's moderation. Returns (check-in, post);
    the check-in is None when moderation blocked the post (the post stays, for the log,
    and `groups.broken_rules(post)` says why).

    Refused with a clear message: a child of another family, a family that is not a
    member, a day the camp does not run, a time outside the daily window (the window is
    shown), a day already checked in, a make-up too far back or with no card left. The
    database refuses a second check-in for the same camp, child and day, so parallel
    requests leave one row; the make-up card, the contended row, is claimed last."""
    now = utcnow()
    local = now.astimezone(institution.zone)
    today = local.date()
    if student.contact_id != contact.id:
        raise ServiceError(_l("Choose one of your children."), field="student", code="student")
    member = group_queries.member_of(camp.group, contact)
    if member is None or not member.is_active:
        raise ServiceError(_l("Join the camp's group to check in."), code="not_member")
    target = today if day is None else day
    if not camp.in_window(local.time()):
        raise ServiceError(
            _l(
                "Check-ins are open from %(start)s to %(end)s.",
                start=camp.window_start.strftime("%H:%M"),
                end=camp.window_end.strftime("%H:%M"),
            ),
            code="outside_window",
        )
    if not camp.runs_on(target):
        raise ServiceError(_l("The camp has no check-in on that day."), code="no_day")
    is_makeup = target != today
    if is_makeup and not (today - timedelta(days=camp.makeup_days) <= target < today):
        raise ServiceError(
            _l("A make-up card reaches back %(n)s days at most.", n=camp.makeup_days),
            code="makeup_too_late",
        )
    if len(body) > MAX_CHECKIN_LENGTH:
        raise ServiceError(
            _l("At most %(n)s characters.", n=MAX_CHECKIN_LENGTH), field="body", code="too_long"
        )
    if target in queries.checked_days(camp, [student.id]).get(student.id, set()):
        raise ServiceError(_already_done(student, target), code="already_checked_in")
    child = _camp_child(institution, camp, contact, student)

    post = groups.write_post(
        institution, camp.group, member, _post_text(camp, student, target, body), pictures=pictures
    )
    if post.status == PostStatus.BLOCKED:
        return None, post
    checkin = db.insert_unless_exists(
        CheckIn,
        {
            "institution_id": institution.id,
            "camp_id": camp.id,
            "student_id": student.id,
            "contact_id": contact.id,
            "day": target,
            "is_makeup": is_makeup,
            "post_id": post.id,
            "created_at": now,
        },
        conflict=["camp_id", "student_id", "day"],
    )
    if checkin is None:  # a parallel request checked in first
        raise ServiceError(_already_done(student, target), code="already_checked_in")
    _credit(institution, camp, contact, student, checkin, today)
    if is_makeup:
        _claim_makeup_card(camp, child)
    log.info("check-in %s: camp %s child %s day %s", checkin.id, camp.id, student.id, target)
    return checkin, post


def _already_done(student: Student, day: date):
    return _l(
        "%(child)s has already checked in for %(day)s.",
        child=student.name,
        day=format_date(day, "medium"),
    )


def _post_text(camp: Camp, student: Student, day: date, body: str) -> str:
    """The check-in as the group sees it. The child's name is masked: every member reads
    the feed, and a family may hide its child's name."""
    number = camp.days().index(day) + 1
    child = masked_name(student.name)
    return f"✅ {camp.title} · {_l('Day %(n)s', n=number)} · {child}\n{body}".strip()


def _camp_child(institution, camp: Camp, contact: Contact, student: Student) -> CampChild:
    join_camp(institution, camp, contact, [student])
    return queries.camp_children(camp)[student.id]


def _claim_makeup_card(camp: Camp, child: CampChild) -> None:
    """One of the child's make-up cards, by a conditional UPDATE: the last statement of
    the check-in, so its row lock is held for milliseconds."""
    claimed = db.session.execute(
        update(CampChild)
        .where(CampChild.id == child.id, CampChild.makeup_used < camp.makeup_cards)
        .values(makeup_used=CampChild.makeup_used + 1)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not claimed:
        raise ServiceError(_l("No make-up cards left for this camp."), code="no_makeup_cards")
    db.session.expire(child, ["makeup_used"])


def _credit(institution, camp, contact, student, checkin: CheckIn, today: date) -> None:
    """Points for the check-in, and a bonus for each streak milestone reached (once per
    camp, child and milestone, whatever order make-ups come in)."""
    rules = loyalty_queries.points_rules(institution)
    loyalty.add_points(
        institution,
        contact,
        rules.per_checkin,
        PointsReason.CHECKIN,
        f"checkin:{checkin.id}",
        note=camp.title,
    )
    days = queries.checked_days(camp, [student.id]).get(student.id, set())
    longest = queries.streak(camp, days, today).longest
    for milestone in STREAK_MILESTONES:
        if longest >= milestone:
            loyalty.add_points(
                institution,
                contact,
                rules.streak_bonus(milestone),
                PointsReason.STREAK,
                f"streak:{camp.id}:{student.id}:{milestone}",
                note=str(_l("%(n)s days in a row", n=milestone)),
            )


def join_camp(institution, camp: Camp, contact: Contact, students: list[Student]) -> int:
    """The family's children take part (checking in also makes a child take part): they
    are then reminded, ranked and counted. Returns how many joined."""
    joined = 0
    for student in students:
        if student.contact_id != contact.id:
            raise ServiceError(_l("Choose one of your children."), field="student", code="student")
        values = {
            "institution_id": institution.id,
            "camp_id": camp.id,
            "student_id": student.id,
            "contact_id": contact.id,
            "makeup_used": 0,
            "hides_name": False,
            "joined_at": utcnow(),
        }
        joined += (
            db.insert_unless_exists(CampChild, values, conflict=["camp_id", "student_id"])
            is not None
        )
    return joined


@groups.on_withdrawn
def _checkin_withdrawn(post) -> None:
    """A check-in whose post was blocked (its pictures), rejected or removed does not
    count: the row goes (the day can be checked in again) and its points are taken back
    by an entry of their own, as the ledger never changes."""
    checkin = db.session.scalar(
        select(CheckIn).where(
            CheckIn.institution_id == post.institution_id, CheckIn.post_id == post.id
        )
    )
    if checkin is None:
        return
    institution = db.session.get(Institution, post.institution_id)
    contact = db.session.get(Contact, checkin.contact_id)
    earned = loyalty_queries.entry_by_source(institution, f"checkin:{checkin.id}")
    if earned is not None:
        loyalty.add_points(
            institution,
            contact,
            -earned.amount,
            PointsReason.CHECKIN,
            f"checkin-void:{checkin.id}",
            note=str(_l("Check-in withdrawn")),
        )
    db.session.delete(checkin)
    db.session.flush()
    log.info("check-in %s withdrawn with post %s", checkin.id, post.id)


def set_name_hidden(institution, camp: Camp, contact: Contact, student: Student, hidden: bool):
    if student.contact_id != contact.id:
        raise ServiceError(_l("Choose one of your children."), field="student", code="student")
    child = _camp_child(institution, camp, contact, student)
    child.hides_name = hidden
    db.session.flush()


# --- nudges ---------------------------------------------------------------------------------


def nudge(institution, camp: Camp, day: date) -> int:
    """One reminder for each child taking part who has not checked in on `day`, through
    the family's channels. The outbox's dedupe key (camp, child, day) makes it once per
    day whatever runs this again: a retried job, a second sweep, a Redis that lost every
    job. None on a day the camp does not run (so none after it ends). Returns the
    children nudged."""
    if not camp.runs_on(day):
        return 0
    children = queries.participants(camp)
    done = queries.checked_days(camp, [child.id for child in children])
    link = external_url("camps_public.camp_page", institution_slug=institution.slug, code=camp.code)
    task = queries.task_for(camp, day)
    count = 0
    for child in children:
        if day in done.get(child.id, set()):
            continue
        notifications.notify_contact(
            institution,
            child.contact,
            "camp_nudge",
            {
                "child_name": child.name,
                "camp_title": camp.title,
                "task": task.prompt if task is not None else "",
                "window_end": camp.window_end.strftime("%H:%M"),
                "camp_link": link,
            },
            dedupe_key=f"camp_nudge:{camp.id}:{child.id}:{day.isoformat()}",
        )
        count += 1
    log.info("camp %s: %s children nudged for %s", camp.id, count, day)
    return count
