"""The dashboard's figures: SQL aggregates over the other domains' rows, each filtered by
the institution first (indexes in app/dashboard/models.py).

Days are the institution's local days. On PostgreSQL a timestamp is put on its day by the
database (`date(timezone(<zone>, created_at))`) after the rows were found by their UTC
range; SQLite (development, the suite without TEST_DATABASE_URL) knows no time zones, so
there the instants of the range are read and put on their days here, with the same
result.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import (
    Float,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    null,
    select,
    text,
    union_all,
)

from app.accounts import queries as account_queries
from app.campaigns import queries as campaign_queries
from app.campaigns.models import (
    CampaignStatus,
    FlashSale,
    FlashSaleStatus,
    GroupBuy,
    Team,
    TeamStatus,
)
from app.camps.models import Camp, CampChild, CheckIn
from app.contacts.models import (
    PROGRESS_SOURCE,
    PROGRESS_STAGES,
    Contact,
    FamilyProgress,
)
from app.courses.models import (
    Attendance,
    Course,
    CourseKind,
    Lesson,
    LessonStatus,
    Seat,
    SeatStatus,
)
from app.dashboard.models import Period
from app.extensions import db
from app.groups.models import (
    AnnouncementRead,
    Group,
    GroupMember,
    MemberActivity,
    MemberStatus,
    Post,
    PostKind,
    PostStatus,
)
from app.institutions.models import Institution
from app.leads.models import OPEN_STAGES, Lead, LeadForm, Stage
from app.localtime import local_day_start
from app.notifications.queries import failed_count
from app.payments.models import Payment, PaymentStatus, PaymentTransition
from app.payments.queries import account_of


def _on_postgresql() -> bool:
    return db.session.get_bind().dialect.name == "postgresql"


def plan_as_reports() -> None:
    """For the rest of the transaction (SET LOCAL: it ends with the request's), PostgreSQL
    plans the dashboard's aggregates

    - without JIT compilation: the funnel's statement was costed high enough to be
      compiled, which took 240 ms of its 650 on the benchmark's school
      (bench/dashboard.py) to save nothing;
    - with random reads costed as on an SSD (1.1 for the default 4, which assumes a
      spinning disk): otherwise a trial's attended seats, a few thousand found by lesson
      through an index, were read by scanning the whole seats table, every institution's
      rows of it, in three times the time."""
    if _on_postgresql():
        db.session.execute(
            text(
                "SELECT set_config('jit', 'off', true), set_config('random_page_cost', '1.1', true)"
            )
        )


def local_today(institution: Institution, now: datetime) -> date:
    return now.astimezone(institution.zone).date()


def per_day(
    institution: Institution,
    period: Period,
    column,
    *where,
    value=None,
    source=None,
) -> dict[date, int]:
    """{local day: rows} (or the sum of `value`) of the rows whose `column` instant falls
    in the period; `source` is the FROM clause when it is a join."""
    start, end = period.utc_bounds(institution.zone)
    conditions = (*where, column >= start, column < end)
    if _on_postgresql():
        day = func.date(func.timezone(institution.timezone, column)).label("day")
        figure = func.count() if value is None else func.coalesce(func.sum(value), 0)
        query = select(day, figure).where(*conditions).group_by(day)
        if source is not None:
            query = query.select_from(source)
        return {day: int(n) for day, n in db.session.execute(query)}
    query = select(column, literal(1) if value is None else value).where(*conditions)
    if source is not None:
        query = query.select_from(source)
    counts: dict[date, int] = defaultdict(int)
    for instant, amount in db.session.execute(query):
        counts[instant.astimezone(institution.zone).date()] += int(amount or 0)
    return dict(counts)


def same_institution(a, b):
    """Part of the join of two tenant tables: their rows are one institution's (as the
    schema's composite foreign keys say). With the institution named for one side in the
    WHERE clause, the planner then knows it for the other too, and reads only that
    institution's rows of it by its index rather than every institution's."""
    return a.institution_id == b.institution_id


# --- this period -----------------------------------------------------------------------------

SERIES = ("contacts", "leads", "trials_booked", "trials_attended", "enrolments", "revenue")
TRIAL_SEATS = Seat.__table__.join(
    Lesson, and_(Lesson.id == Seat.lesson_id, same_institution(Lesson, Seat))
).join(Course, and_(Course.id == Lesson.course_id, same_institution(Course, Lesson)))
PRESENT = (Attendance.PRESENT, Attendance.LATE)


def daily_series(institution: Institution, period: Period) -> dict[str, dict[date, int]]:
    """Per series, {local day: figure} over the period:

    - contacts: families seen for the first time;
    - leads: leads opened;
    - trials_booked: places taken at trial lessons (seats booked, on the day of booking;
      a place given up since, or still waiting for its payment, does not count);
    - trials_attended: trial places marked present or late, on the lesson's day;
    - enrolments: leads that reached `enrolled` (paid: a filled team, a paid flash-sale
      seat or course), on the day they did;
    - revenue: money captured (minor units, the institution's currency) minus the money
      refunded, each on its own day.
    """
    i = institution.id
    refunds = per_day(
        institution,
        period,
        PaymentTransition.created_at,
        PaymentTransition.institution_id == i,
        PaymentTransition.to_status == PaymentStatus.REFUNDED,
        Payment.currency == institution.currency,
        value=Payment.amount,
        source=PaymentTransition.__table__.join(
            Payment,
            and_(
                Payment.id == PaymentTransition.payment_id,
                same_institution(Payment, PaymentTransition),
            ),
        ),
    )
    captured = per_day(
        institution,
        period,
        Payment.captured_at,
        Payment.institution_id == i,
        Payment.status.in_([PaymentStatus.CAPTURED, PaymentStatus.REFUNDED]),
        Payment.currency == institution.currency,
        value=Payment.amount,
    )
    revenue = {
        day: captured.get(day, 0) - refunds.get(day, 0) for day in set(captured) | set(refunds)
    }
    return {
        "contacts": per_day(institution, period, Contact.created_at, Contact.institution_id == i),
        "leads": per_day(institution, period, Lead.created_at, Lead.institution_id == i),
        "trials_booked": per_day(
            institution,
            period,
            Seat.created_at,
            Seat.institution_id == i,
            Seat.status == SeatStatus.BOOKED,
            Course.kind == CourseKind.TRIAL,
            source=TRIAL_SEATS,
        ),
        "trials_attended": per_day(
            institution,
            period,
            Lesson.starts_at,
            Lesson.institution_id == i,
            Seat.attendance.in_(PRESENT),
            Course.kind == CourseKind.TRIAL,
            source=TRIAL_SEATS,
        ),
        "enrolments": per_day(
            institution,
            period,
            Lead.closed_at,
            Lead.institution_id == i,
            Lead.stage == Stage.ENROLLED,
        ),
        "revenue": revenue,
    }


@dataclass
class PeriodFigures:
    period: Period
    previous: Period
    by_day: dict[str, dict[date, int]]  # this period and the previous one
    totals: dict[str, int] = field(default_factory=dict)
    previous_totals: dict[str, int] = field(default_factory=dict)

    def day_values(self, series: str) -> list[int]:
        values = self.by_day[series]
        return [values.get(day, 0) for day in self.period.each_day()]

    def change(self, series: str) -> int | None:
        """The change from the previous period in percent (None: nothing to compare)."""
        before = self.previous_totals[series]
        if not before:
            return None
        return round(100 * (self.totals[series] - before) / before)


def period_figures(institution: Institution, period: Period) -> PeriodFigures:
    """The period's figures by day and in total, with the previous period's totals (one
    query per series covers both periods)."""
    plan_as_reports()
    previous = period.previous()
    by_day = daily_series(institution, Period(previous.start, period.end))
    figures = PeriodFigures(period, previous, by_day)
    for series, values in by_day.items():
        figures.totals[series] = sum(v for d, v in values.items() if d >= period.start)
        figures.previous_totals[series] = sum(v for d, v in values.items() if d < period.start)
    return figures


# --- today -----------------------------------------------------------------------------------


@dataclass
class TrialLesson:
    lesson_id: int
    course_id: int
    title: str
    starts_at: datetime
    capacity: int
    booked: int
    marked: int  # attendance taken
    present: int


@dataclass
class Today:
    trial_lessons: list[TrialLesson]
    new_leads: int
    follow_ups_due: int  # later today
    follow_ups_overdue: int
    failed_messages: int
    payments_waiting: int  # checkouts pending and card holds waiting for their team
    teams_expiring: list[tuple[int, str, int]]  # (group buy id, title, teams)
    held_posts: list[tuple[int, str, int]]  # (group id, title, posts held for review)

    @property
    def teams_expiring_count(self) -> int:
        return sum(n for _id, _title, n in self.teams_expiring)

    @property
    def held_posts_count(self) -> int:
        return sum(n for _id, _title, n in self.held_posts)


EXPIRING_WITHIN = timedelta(hours=24)


def today(institution: Institution, user_id: int, now: datetime) -> Today:
    """What needs doing today: see `Today`."""
    plan_as_reports()
    i = institution.id
    day = local_today(institution, now)
    start = local_day_start(day, institution.zone)
    end = local_day_start(day + timedelta(days=1), institution.zone)
    lessons = db.session.execute(
        select(
            Lesson.id,
            Lesson.course_id,
            Course.title,
            Lesson.starts_at,
            Course.capacity,
            func.count(Seat.id).filter(Seat.status == SeatStatus.BOOKED),
            func.count(Seat.id).filter(Seat.attendance.is_not(None)),
            func.count(Seat.id).filter(Seat.attendance.in_(PRESENT)),
        )
        .join(Course, and_(Course.id == Lesson.course_id, same_institution(Course, Lesson)))
        .outerjoin(Seat, and_(Seat.lesson_id == Lesson.id, same_institution(Seat, Lesson)))
        .where(
            Lesson.institution_id == i,
            Lesson.starts_at >= start,
            Lesson.starts_at < end,
            Lesson.status == LessonStatus.SCHEDULED,
            Course.kind == CourseKind.TRIAL,
        )
        .group_by(Lesson.id, Lesson.course_id, Course.title, Lesson.starts_at, Course.capacity)
        .order_by(Lesson.starts_at, Lesson.id)
    ).all()
    new_leads = db.session.scalar(
        select(func.count()).where(
            Lead.institution_id == i, Lead.created_at >= start, Lead.created_at < end
        )
    )
    due, overdue = db.session.execute(
        select(
            func.count().filter(Lead.next_contact_at >= now),
            func.count().filter(Lead.next_contact_at < now),
        ).where(
            Lead.institution_id == i,
            Lead.stage.in_(OPEN_STAGES),
            Lead.owner_id == user_id,
            Lead.next_contact_at < end,
        )
    ).one()
    waiting = db.session.scalar(
        select(func.count()).where(
            Payment.institution_id == i,
            Payment.status.in_([PaymentStatus.PENDING, PaymentStatus.AUTHORISED]),
        )
    )
    teams = db.session.execute(
        select(GroupBuy.id, GroupBuy.title, func.count(Team.id))
        .join(GroupBuy, and_(GroupBuy.id == Team.group_buy_id, same_institution(GroupBuy, Team)))
        .where(
            Team.institution_id == i,
            Team.status == TeamStatus.FORMING,
            Team.expires_at >= now,
            Team.expires_at < now + EXPIRING_WITHIN,
            Team.member_count > 0,
        )
        .group_by(GroupBuy.id, GroupBuy.title)
        .order_by(GroupBuy.id)
    ).all()
    held = db.session.execute(
        select(Group.id, Group.title, func.count(Post.id))
        .join(Group, and_(Group.id == Post.group_id, same_institution(Group, Post)))
        .where(Post.institution_id == i, Post.status == PostStatus.HELD)
        .group_by(Group.id, Group.title)
        .order_by(Group.id)
    ).all()
    return Today(
        trial_lessons=[TrialLesson(*row) for row in lessons],
        new_leads=new_leads,
        follow_ups_due=due,
        follow_ups_overdue=overdue,
        failed_messages=failed_count(institution),
        payments_waiting=waiting,
        teams_expiring=[tuple(row) for row in teams],
        held_posts=[tuple(row) for row in held],
    )


# --- live campaigns --------------------------------------------------------------------------


@dataclass
class LiveCampaign:
    kind: str  # "group_buy" or "flash_sale"
    id: int
    title: str
    ends_at: datetime
    # Group buys: teams opened, filled, failed, still forming. Flash sales: sold of stock.
    opened: int = 0
    filled: int = 0
    failed: int = 0
    forming: int = 0
    sold: int = 0
    stock: int = 0

    @property
    def fill_rate(self) -> int | None:
        """Percent: filled teams of those decided (group buys), seats sold of the stock
        (flash sales)."""
        if self.kind == "flash_sale":
            return round(100 * self.sold / self.stock) if self.stock else None
        decided = self.filled + self.failed
        return round(100 * self.filled / decided) if decided else None


def live_campaigns(institution: Institution, now: datetime) -> list[LiveCampaign]:
    """Group buys and flash sales open right now, ending soonest first."""
    group_buys = db.session.execute(
        select(GroupBuy.id, GroupBuy.title, GroupBuy.ends_at).where(
            GroupBuy.institution_id == institution.id,
            GroupBuy.status == CampaignStatus.PUBLISHED,
            GroupBuy.starts_at <= now,
            GroupBuy.ends_at > now,
        )
    ).all()
    figures = campaign_queries.figures([row.id for row in group_buys])
    live = [
        LiveCampaign(
            "group_buy",
            row.id,
            row.title,
            row.ends_at,
            opened=figures[row.id].teams_opened,
            filled=figures[row.id].teams_succeeded,
            failed=figures[row.id].teams_failed,
            forming=figures[row.id].teams_forming,
        )
        for row in group_buys
    ]
    sales = db.session.execute(
        select(FlashSale.id, FlashSale.title, FlashSale.ends_at, FlashSale.sold, FlashSale.stock)
        .where(
            FlashSale.institution_id == institution.id,
            FlashSale.status == FlashSaleStatus.SCHEDULED,
            FlashSale.starts_at <= now,
            FlashSale.ends_at > now,
        )
        .order_by(FlashSale.ends_at)
    ).all()
    live += [
        LiveCampaign("flash_sale", row.id, row.title, row.ends_at, sold=row.sold, stock=row.stock)
        for row in sales
    ]
    return sorted(live, key=lambda c: (c.ends_at, c.kind, c.id))


# --- next steps ------------------------------------------------------------------------------


def next_steps(institution: Institution) -> dict[str, bool]:
    """Which of the first things an institution sets up are done, and whether it has any
    family yet (an institution without one sees these steps instead of zeros)."""
    i = institution.id

    def exists(query) -> bool:
        return db.session.scalar(select(query.exists())) or False

    account = account_of(i)
    members = account_queries.institution_members(institution)
    return {
        "has_families": exists(select(Contact.id).where(Contact.institution_id == i)),
        "form": exists(select(LeadForm.id).where(LeadForm.institution_id == i)),
        "trial_course": exists(
            select(Course.id).where(Course.institution_id == i, Course.kind == CourseKind.TRIAL)
        ),
        "payments": bool(account and (account.secret_key or account.connected_account_id)),
        "campaign": exists(
            select(GroupBuy.id).where(
                GroupBuy.institution_id == i, GroupBuy.status != CampaignStatus.DRAFT
            )
        )
        or exists(
            select(FlashSale.id).where(
                FlashSale.institution_id == i, FlashSale.status != FlashSaleStatus.DRAFT
            )
        ),
        "logo": institution.has_logo,
        "contact": bool(institution.contact_phone or institution.contact_email),
        "team": len(members) > 1 or bool(account_queries.pending_invitations(institution)),
    }


# --- the funnel ------------------------------------------------------------------------------

# The stages in order; a family "reached" a stage when its lead went there or further.
STAGES = ("first_touch", "lead", "contacted", "trial_booked", "trial_attended", "enrolled")
_AT = ("touch_at", *PROGRESS_STAGES)
# The breakdowns of the funnel, in the page's order.
DIMENSIONS = ("channel", *PROGRESS_SOURCE[1:], "owner")


def families(institution: Institution, period: Period):
    """One row per family first seen in the period (the funnel's cohort): where it came
    from (its first touch), the owner of its newest lead, and when it first reached each
    stage (`rank`: the furthest stage, 0 for none). Read from the families' progress rows
    (contacts' FamilyProgress, kept as leads move), found by the institution's index on
    the day they were first seen."""
    start, end = period.utc_bounds(institution.zone)
    return (
        select(
            FamilyProgress.contact_id,
            FamilyProgress.owner_id,
            *[FamilyProgress.__table__.c[name] for name in PROGRESS_SOURCE],
            FamilyProgress.rank,
            FamilyProgress.first_seen_at.label("touch_at"),
            *[FamilyProgress.__table__.c[name] for name in PROGRESS_STAGES],
        )
        .where(
            FamilyProgress.institution_id == institution.id,
            FamilyProgress.first_seen_at >= start,
            FamilyProgress.first_seen_at < end,
        )
        .cte("families")
    )


def _key(cohort, dimension: str):
    if dimension == "owner":
        return func.coalesce(cast(cohort.c.owner_id, String), "")
    return cohort.c[dimension]


def _reached_counts(cohort) -> list:
    return [func.count()] + [
        func.coalesce(func.sum(case((cohort.c.rank >= n, 1), else_=0)), 0) for n in range(1, 6)
    ]


@dataclass
class FunnelRow:
    key: str
    counts: list[int]  # families at each of STAGES

    def rate(self, n: int) -> int | None:
        """Percent of the families at stage n-1 that reached stage n."""
        before = self.counts[n - 1]
        return round(100 * self.counts[n] / before) if before else None

    @property
    def overall(self) -> int | None:
        """Percent of the first touches that ended enrolled."""
        return round(100 * self.counts[-1] / self.counts[0]) if self.counts[0] else None


@dataclass
class Funnel:
    period: Period
    total: FunnelRow
    medians: list[float | None]  # seconds from stage n-1 to stage n (index 0 unused)
    breakdowns: dict[str, list[FunnelRow]]
    lost: list[tuple[str, int]]  # (reason, leads)


def funnel(institution: Institution, period: Period) -> Funnel:
    """The families first seen in the period and how far they went, in total and by each
    of DIMENSIONS (one statement: the cohort is computed once, then grouped each way),
    the median time between stages, and the cohort's lost leads by reason."""
    plan_as_reports()
    cohort = families(institution, period)
    on_postgresql = _on_postgresql()
    # The medians come with the total's row on PostgreSQL (percentile_cont); the other
    # rows carry none, so that every branch of the union has the same columns.
    no_medians = [cast(null(), Float)] * 5
    branches = [
        select(
            literal("total").label("dimension"),
            literal("").label("key"),
            *_reached_counts(cohort),
            *(_median_columns(cohort) if on_postgresql else no_medians),
        )
    ]
    for dimension in DIMENSIONS:
        key = _key(cohort, dimension)
        branches.append(
            select(
                literal(dimension).label("dimension"),
                cast(key, String).label("key"),
                *_reached_counts(cohort),
                *no_medians,
            )
            .where(key.is_not(None))
            .group_by(key)
        )
    total = FunnelRow("", [0] * len(STAGES))
    medians: list[float | None] = [None] * len(STAGES)
    breakdowns: dict[str, list[FunnelRow]] = {dimension: [] for dimension in DIMENSIONS}
    for dimension, key, *figures in db.session.execute(union_all(*branches)):
        counts, spans = figures[: len(STAGES)], figures[len(STAGES) :]
        row = FunnelRow(key, [int(n) for n in counts])
        if dimension == "total":
            total = row
            medians = [None, *[None if span is None else float(span) for span in spans]]
        else:
            breakdowns[dimension].append(row)
    for rows in breakdowns.values():
        rows.sort(key=lambda r: (-r.counts[0], -r.counts[-1], r.key))
    return Funnel(
        period=period,
        total=total,
        medians=medians if on_postgresql else _medians_here(cohort),
        breakdowns=breakdowns,
        lost=lost_reasons(institution, period),
    )


def _median_columns(cohort) -> list:
    """The median seconds between consecutive stages, over the families that reached the
    later one (PostgreSQL)."""
    return [
        func.percentile_cont(0.5).within_group(
            func.extract("epoch", cohort.c[_AT[n]] - cohort.c[_AT[n - 1]])
        )
        for n in range(1, 6)
    ]


def _medians_here(cohort) -> list[float | None]:
    """`_median_columns` for SQLite, which has no percentile_cont: the spans are read and
    their medians taken here (development data is small)."""
    rows = db.session.execute(select(*[cohort.c[name] for name in _AT])).all()
    medians: list[float | None] = [None]
    for n in range(1, 6):
        spans = [
            (row[n] - row[n - 1]).total_seconds()
            for row in rows
            if row[n] is not None and row[n - 1] is not None
        ]
        medians.append(statistics.median(spans) if spans else None)
    return medians


def lost_reasons(institution: Institution, period: Period) -> list[tuple[str, int]]:
    """The cohort's lost leads by reason, most first."""
    start, end = period.utc_bounds(institution.zone)
    reason = func.coalesce(Lead.lost_reason, "")
    rows = db.session.execute(
        select(reason, func.count())
        .join(
            Contact,
            and_(Contact.id == Lead.contact_id, same_institution(Contact, Lead)),
        )
        .where(
            Lead.institution_id == institution.id,
            Lead.stage == Stage.LOST,
            # Lost after the family's first touch, so in the period or since: the range
            # reads the institution's index (stage, closed_at), not every lead.
            Lead.closed_at >= start,
            Contact.created_at >= start,
            Contact.created_at < end,
        )
        .group_by(reason)
    ).all()
    return sorted(((r, int(n)) for r, n in rows), key=lambda item: (-item[1], item[0]))


@dataclass
class Family:
    contact_id: int
    parent_name: str
    phone: str
    touch_at: datetime
    rank: int


FAMILIES_LIMIT = 500


def funnel_families(
    institution: Institution, period: Period, stage: int, dimension: str = "", key: str = ""
) -> list[Family]:
    """The families behind one number of the funnel: those of the cohort (of one
    breakdown's `key`, or with a lost lead of reason `key` for dimension "lost") that
    reached stage number `stage` (an index of STAGES); newest first, at most
    FAMILIES_LIMIT."""
    plan_as_reports()
    cohort = families(institution, period)
    query = (
        select(Contact.id, Contact.parent_name, Contact.phone, cohort.c.touch_at, cohort.c.rank)
        .join(Contact, Contact.id == cohort.c.contact_id)
        .where(Contact.institution_id == institution.id, cohort.c.rank >= stage)
        .order_by(cohort.c.touch_at.desc(), Contact.id.desc())
        .limit(FAMILIES_LIMIT)
    )
    if dimension == "lost":
        query = query.where(
            select(Lead.id)
            .where(
                Lead.institution_id == institution.id,
                Lead.contact_id == cohort.c.contact_id,
                Lead.stage == Stage.LOST,
                func.coalesce(Lead.lost_reason, "") == key,
            )
            .exists()
        )
    elif dimension in DIMENSIONS:
        query = query.where(cast(_key(cohort, dimension), String) == key)
    return [Family(*row) for row in db.session.execute(query)]


def dimension_labels(institution: Institution, dimension: str, keys: list[str]) -> dict[str, str]:
    """What a breakdown's keys are called on the page: forms and campaigns by title (their
    codes are the keys), staff by name."""
    keys = [key for key in keys if key]
    if not keys:
        return {}
    i = institution.id
    if dimension == "form":
        rows = db.session.execute(
            select(LeadForm.code, LeadForm.title).where(
                LeadForm.institution_id == i, LeadForm.code.in_(keys)
            )
        )
        return dict(rows.all())
    if dimension == "campaign":
        labels = dict(
            db.session.execute(
                select(GroupBuy.code, GroupBuy.title).where(
                    GroupBuy.institution_id == i, GroupBuy.code.in_(keys)
                )
            ).all()
        )
        labels.update(
            db.session.execute(
                select(FlashSale.code, FlashSale.title).where(
                    FlashSale.institution_id == i, FlashSale.code.in_(keys)
                )
            ).all()
        )
        return labels
    if dimension == "owner":
        return {
            str(m.user_id): m.user.name for m in account_queries.institution_members(institution)
        }
    return {}


# --- community health ------------------------------------------------------------------------


@dataclass
class GroupHealth:
    group_id: int
    title: str
    members: int
    dau: float  # average daily active members over the period
    wau: int  # active in the period's last 7 days
    mau: int  # active in the period's last 30 days
    posts_per_day: float
    announcements: int
    read_rate: int | None  # percent of (announcements x members) read

    @property
    def stickiness(self) -> int | None:
        """DAU/MAU in percent."""
        return round(100 * self.dau / self.mau) if self.mau else None


def group_health(institution: Institution, period: Period) -> list[GroupHealth]:
    plan_as_reports()
    i = institution.id
    groups = db.session.execute(
        select(Group.id, Group.title).where(Group.institution_id == i).order_by(Group.id)
    ).all()
    if not groups:
        return []
    members = dict(
        db.session.execute(
            select(GroupMember.group_id, func.count())
            .where(GroupMember.institution_id == i, GroupMember.status == MemberStatus.ACTIVE)
            .group_by(GroupMember.group_id)
        ).all()
    )
    month_start = min(period.start, period.end - timedelta(days=29))
    week_start = period.end - timedelta(days=6)
    daily = db.session.execute(
        select(
            MemberActivity.group_id,
            MemberActivity.day,
            func.count(func.distinct(MemberActivity.member_id)),
        )
        .where(
            MemberActivity.institution_id == i,
            MemberActivity.day >= period.start,
            MemberActivity.day <= period.end,
        )
        .group_by(MemberActivity.group_id, MemberActivity.day)
    ).all()
    active_days: dict[int, int] = defaultdict(int)
    for group_id, _day, count in daily:
        active_days[group_id] += count
    wide = {
        group_id: (wau, mau)
        for group_id, wau, mau in db.session.execute(
            select(
                MemberActivity.group_id,
                func.count(
                    func.distinct(
                        case((MemberActivity.day >= week_start, MemberActivity.member_id))
                    )
                ),
                func.count(func.distinct(MemberActivity.member_id)),
            )
            .where(
                MemberActivity.institution_id == i,
                MemberActivity.day >= month_start,
                MemberActivity.day <= period.end,
            )
            .group_by(MemberActivity.group_id)
        )
    }
    start, end = period.utc_bounds(institution.zone)
    posts = dict(
        db.session.execute(
            select(Post.group_id, func.count())
            .where(
                Post.institution_id == i,
                Post.kind.in_([PostKind.POST, PostKind.REPLY]),
                Post.status == PostStatus.PUBLISHED,
                Post.created_at >= start,
                Post.created_at < end,
            )
            .group_by(Post.group_id)
        ).all()
    )
    in_period = and_(
        Post.institution_id == i,
        Post.kind == PostKind.ANNOUNCEMENT,
        Post.status == PostStatus.PUBLISHED,
        Post.publish_at >= start,
        Post.publish_at < end,
    )
    announcements = dict(
        db.session.execute(
            select(Post.group_id, func.count()).where(in_period).group_by(Post.group_id)
        ).all()
    )
    reads = dict(
        db.session.execute(
            select(Post.group_id, func.count(AnnouncementRead.id))
            .join(
                AnnouncementRead,
                and_(AnnouncementRead.post_id == Post.id, same_institution(AnnouncementRead, Post)),
            )
            .where(in_period, AnnouncementRead.institution_id == i)
            .group_by(Post.group_id)
        ).all()
    )
    health = []
    for group_id, title in groups:
        count = members.get(group_id, 0)
        made = announcements.get(group_id, 0)
        wau, mau = wide.get(group_id, (0, 0))
        health.append(
            GroupHealth(
                group_id=group_id,
                title=title,
                members=count,
                dau=round(active_days.get(group_id, 0) / period.days, 1),
                wau=wau,
                mau=mau,
                posts_per_day=round(posts.get(group_id, 0) / period.days, 1),
                announcements=made,
                read_rate=(
                    round(100 * reads.get(group_id, 0) / (made * count)) if made and count else None
                ),
            )
        )
    return health


@dataclass
class CampDay:
    camp_id: int
    title: str
    day: date
    checked_in: int
    children: int

    @property
    def rate(self) -> int | None:
        return round(100 * self.checked_in / self.children) if self.children else None


def camp_days(institution: Institution, period: Period) -> list[CampDay]:
    """For each camp running in the period, each of its days in the period (up to the
    period's end): children checked in, of the children taking part."""
    plan_as_reports()
    camps = list(
        db.session.scalars(
            select(Camp)
            .where(
                Camp.institution_id == institution.id,
                Camp.starts_on <= period.end,
                Camp.ends_on >= period.start,
            )
            .order_by(Camp.starts_on, Camp.id)
        )
    )
    if not camps:
        return []
    ids = [camp.id for camp in camps]
    children = dict(
        db.session.execute(
            select(CampChild.camp_id, func.count())
            .where(CampChild.institution_id == institution.id, CampChild.camp_id.in_(ids))
            .group_by(CampChild.camp_id)
        ).all()
    )
    checked = {
        (camp_id, day): n
        for camp_id, day, n in db.session.execute(
            select(CheckIn.camp_id, CheckIn.day, func.count(func.distinct(CheckIn.student_id)))
            .where(
                CheckIn.institution_id == institution.id,
                CheckIn.camp_id.in_(ids),
                CheckIn.day >= period.start,
                CheckIn.day <= period.end,
            )
            .group_by(CheckIn.camp_id, CheckIn.day)
        )
    }
    rows = []
    for camp in camps:
        for day in camp.days(until=period.end):
            if day >= period.start:
                rows.append(
                    CampDay(
                        camp.id,
                        camp.title,
                        day,
                        checked.get((camp.id, day), 0),
                        children.get(camp.id, 0),
                    )
                )
    return rows


COHORT_WEEKS = 8


@dataclass
class JoinCohort:
    week: date  # its Monday
    joined: int
    active: list[int | None]  # members active in weeks 1..8 after the join week (None: not yet)

    def share(self, n: int) -> int | None:
        value = self.active[n]
        return None if value is None or not self.joined else round(100 * value / self.joined)


def join_cohorts(institution: Institution, today_: date) -> list[JoinCohort]:
    """Families who joined a group in each of the last COHORT_WEEKS weeks (local weeks from
    Monday, the current one included), and how many of them were active in a group they
    joined in each week after their join week: the retention triangle."""
    plan_as_reports()
    this_week = today_ - timedelta(days=today_.weekday())
    first_week = this_week - timedelta(weeks=COHORT_WEEKS - 1)
    zone = institution.zone
    joined = db.session.execute(
        select(GroupMember.id, GroupMember.joined_at).where(
            GroupMember.institution_id == institution.id,
            GroupMember.joined_at >= local_day_start(first_week, zone),
        )
    ).all()
    week_of: dict[int, date] = {}
    for member_id, joined_at in joined:
        day = joined_at.astimezone(zone).date()
        week_of[member_id] = day - timedelta(days=day.weekday())
    seen: dict[tuple[date, int], set[int]] = defaultdict(set)
    if week_of:
        activity = db.session.execute(
            select(MemberActivity.member_id, MemberActivity.day)
            .join(
                GroupMember,
                and_(
                    GroupMember.id == MemberActivity.member_id,
                    same_institution(GroupMember, MemberActivity),
                ),
            )
            .where(
                MemberActivity.institution_id == institution.id,
                MemberActivity.day >= first_week + timedelta(weeks=1),
                GroupMember.institution_id == institution.id,
                GroupMember.joined_at >= local_day_start(first_week, zone),
            )
            .distinct()
        )
        for member_id, day in activity:
            week = week_of.get(member_id)
            if week is None:
                continue
            n = (day - week).days // 7
            if 1 <= n <= COHORT_WEEKS:
                seen[(week, n)].add(member_id)
    cohorts = []
    for k in range(COHORT_WEEKS):
        week = first_week + timedelta(weeks=k)
        size = sum(1 for w in week_of.values() if w == week)
        active: list[int | None] = [None]
        for n in range(1, COHORT_WEEKS + 1):
            started = week + timedelta(weeks=n)
            active.append(len(seen[(week, n)]) if started <= today_ else None)
        cohorts.append(JoinCohort(week, size, active))
    return cohorts
