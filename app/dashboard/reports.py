"""The dashboard's pages as data: the figures of app.dashboard.queries laid out as tables
(what a page shows, and what its CSV exports, cell for cell) and charts.

A table's cells are raw values with a kind per column; the page formats them for people
(money with its symbol, percentages, durations) and the CSV for spreadsheets (major units,
plain numbers), so the two always carry the same figures.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from babel.numbers import get_currency_precision
from flask import url_for
from flask_babel import format_date
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from app.contacts.models import SOURCE_LABELS
from app.dashboard import charts, queries
from app.dashboard.models import Period
from app.dashboard.queries import DIMENSIONS, STAGES
from app.institutions.models import Institution
from app.leads.models import STAGE_LABELS, Stage
from app.money import to_major

STAGE_NAMES = {
    "first_touch": _l("First touch"),
    "lead": _l("Lead"),
    "contacted": STAGE_LABELS[Stage.CONTACTED],
    "trial_booked": STAGE_LABELS[Stage.TRIAL_BOOKED],
    "trial_attended": STAGE_LABELS[Stage.TRIAL_ATTENDED],
    "enrolled": _l("Enrolled (paid)"),
}
SERIES_NAMES = {
    "contacts": _l("New contacts"),
    "leads": _l("Leads"),
    "trials_booked": _l("Trials booked"),
    "trials_attended": _l("Trials attended"),
    "enrolments": _l("Enrolments"),
    "revenue": _l("Revenue"),
}
DIMENSION_NAMES = {
    "channel": _l("Source"),
    "form": _l("Form"),
    "campaign": _l("Campaign"),
    "utm_source": _l("UTM source"),
    "utm_medium": _l("UTM medium"),
    "utm_campaign": _l("UTM campaign"),
    "referrer": _l("Referrer"),
    "owner": _l("Staff member"),
}
CHANNEL_NAMES = {
    **{kind.value: label for kind, label in SOURCE_LABELS.items()},
    "referral": _l("Referral"),
}
REFERRER_NAMES = {
    "direct": _l("Direct or unknown"),
    "wechat": _l("WeChat"),
    "douyin": _l("Douyin"),
    "xiaohongshu": _l("Xiaohongshu"),
    "weibo": _l("Weibo"),
    "qq": _l("QQ"),
    "baidu": _l("Baidu"),
    "google": _l("Google"),
    "bing": _l("Bing"),
    "other": _l("Other sites"),
}
NONE = _l("(none)")


@dataclass
class Link:
    """A cell that opens the list behind it."""

    value: object
    href: str


@dataclass
class Money:
    """A sum of money in a column of counts (the revenue row of a table of figures)."""

    minor: int


@dataclass
class Table:
    name: str  # its CSV's name, and its anchor on the page
    title: str
    columns: list[tuple[str, str]]  # (label, kind): text, int, float, money, percent, hours, day
    rows: list[list] = field(default_factory=list)

    def csv(self, currency: str) -> tuple[list[str], list[list]]:
        header = [str(label) for label, _kind in self.columns]
        body = []
        for row in self.rows:
            cells = []
            for (_label, kind), cell in zip(self.columns, row, strict=True):
                value = cell.value if isinstance(cell, Link) else cell
                cells.append(_csv_value(value, kind, currency))
            body.append(cells)
        return header, body


def _csv_value(value, kind: str, currency: str):
    if value is None:
        return ""
    if isinstance(value, Money):
        value, kind = value.minor, "money"
    if kind == "money":
        return f"{to_major(value, currency):.{get_currency_precision(currency)}f}"
    if kind == "hours":
        return f"{value / 3600:.1f}"
    if kind == "day":
        return value.isoformat()
    return value


@dataclass
class Page:
    tables: dict[str, Table] = field(default_factory=dict)
    charts: dict[str, Markup] = field(default_factory=dict)
    figures: queries.PeriodFigures | None = None  # the home page's
    funnel: queries.Funnel | None = None  # the funnel page's
    today: queries.Today | None = None  # the home page's

    def add(self, table: Table) -> Table:
        self.tables[table.name] = table
        return table


def _day_label(day: date) -> str:
    return format_date(day, "M/d")


# --- home ------------------------------------------------------------------------------------


def home(institution: Institution, period: Period) -> Page:
    """This period's figures by day (two charts: counts and revenue) and the live
    campaigns, as tables."""
    page = Page()
    figures = queries.period_figures(institution, period)
    page.figures = figures
    counts = [s for s in queries.SERIES if s != "revenue"]
    daily = page.add(
        Table(
            "daily",
            _l("By day"),
            [(_l("Day"), "day")]
            + [(SERIES_NAMES[s], "int") for s in counts]
            + [(SERIES_NAMES["revenue"], "money")],
        )
    )
    for n, day in enumerate(period.each_day()):
        daily.rows.append([day, *[figures.day_values(s)[n] for s in queries.SERIES]])
    totals = page.add(
        Table(
            "totals",
            _l("This period and the one before"),
            [
                (_l("Figure"), "text"),
                (_l("This period"), "int"),
                (_l("Previous period"), "int"),
                (_l("Change (%)"), "percent"),
            ],
        )
    )
    for s in queries.SERIES:
        wrap = Money if s == "revenue" else int
        totals.rows.append(
            [
                str(SERIES_NAMES[s]),
                wrap(figures.totals[s]),
                wrap(figures.previous_totals[s]),
                figures.change(s),
            ]
        )
    labels = [_day_label(day) for day in period.each_day()]
    page.charts["daily"] = charts.line_chart(
        str(_l("By day")),
        labels,
        [(str(SERIES_NAMES[s]), figures.day_values(s)) for s in counts],
    )
    page.charts["revenue"] = charts.bar_chart(
        str(SERIES_NAMES["revenue"]),
        labels,
        [
            (
                str(SERIES_NAMES["revenue"]),
                [float(to_major(v, institution.currency)) for v in figures.day_values("revenue")],
            )
        ],
    )
    return page


def campaigns_table(live: list[queries.LiveCampaign], now: datetime) -> Table:
    table = Table(
        "campaigns",
        _l("Live campaigns"),
        [
            (_l("Campaign"), "text"),
            (_l("Kind"), "text"),
            (_l("Teams opened"), "int"),
            (_l("Teams filled"), "int"),
            (_l("Teams failed"), "int"),
            (_l("Sold"), "int"),
            (_l("Stock"), "int"),
            (_l("Fill rate (%)"), "percent"),
            (_l("Hours left"), "float"),
        ],
    )
    for c in live:
        is_buy = c.kind == "group_buy"
        href = (
            url_for("campaigns.campaign_detail", group_buy_id=c.id)
            if is_buy
            else url_for("campaigns.flash_detail", flash_sale_id=c.id)
        )
        table.rows.append(
            [
                Link(c.title, href),
                str(_l("Group buy") if is_buy else _l("Flash sale")),
                c.opened if is_buy else None,
                c.filled if is_buy else None,
                c.failed if is_buy else None,
                None if is_buy else c.sold,
                None if is_buy else c.stock,
                c.fill_rate,
                round((c.ends_at - now).total_seconds() / 3600, 1),
            ]
        )
    return table


def lessons_table(institution: Institution, today: queries.Today) -> Table:
    table = Table(
        "lessons",
        _l("Trial lessons today"),
        [
            (_l("Lesson"), "text"),
            (_l("Starts"), "text"),
            (_l("Seats booked"), "int"),
            (_l("Capacity"), "int"),
            (_l("Attendance taken"), "int"),
            (_l("Present"), "int"),
        ],
    )
    for lesson in today.trial_lessons:
        table.rows.append(
            [
                Link(lesson.title, url_for("courses.roll_call", lesson_id=lesson.lesson_id)),
                lesson.starts_at.astimezone(institution.zone).strftime("%H:%M"),
                lesson.booked,
                lesson.capacity,
                lesson.marked,
                lesson.present,
            ]
        )
    return table


# --- the funnel ------------------------------------------------------------------------------


def _families_link(period: Period, stage: int, dimension: str = "", key: str = "") -> str:
    return url_for(
        "dashboard.funnel_families",
        stage=STAGES[stage],
        dimension=dimension or None,
        key=key if dimension else None,
        **period.args(),
    )


def key_label(dimension: str, key: str, labels: dict[str, str]) -> str:
    if dimension == "channel":
        return str(CHANNEL_NAMES.get(key, key or NONE))
    if dimension == "referrer":
        return str(REFERRER_NAMES.get(key, key))
    if dimension == "owner" and not key:
        return str(_l("Nobody"))
    return labels.get(key) or key or str(NONE)


def funnel(institution: Institution, period: Period) -> Page:
    """The funnel in total (chart and table) and broken down each way, and lost leads by
    reason; every count links to the families behind it."""
    page = Page()
    result = queries.funnel(institution, period)
    page.funnel = result
    total = result.total
    stages = page.add(
        Table(
            "funnel",
            _l("The funnel"),
            [
                (_l("Stage"), "text"),
                (_l("Families"), "int"),
                (_l("From the stage before (%)"), "percent"),
                (_l("Median time from the stage before (hours)"), "hours"),
            ],
        )
    )
    for n, stage in enumerate(STAGES):
        stages.rows.append(
            [
                str(STAGE_NAMES[stage]),
                Link(total.counts[n], _families_link(period, n)),
                total.rate(n) if n else None,
                result.medians[n] if n else None,
            ]
        )
    page.charts["funnel"] = charts.funnel_chart(
        str(_l("The funnel")), [str(STAGE_NAMES[s]) for s in STAGES], total.counts
    )
    for dimension in DIMENSIONS:
        rows = result.breakdowns[dimension]
        labels = queries.dimension_labels(institution, dimension, [r.key for r in rows])
        table = page.add(
            Table(
                f"by_{dimension}",
                DIMENSION_NAMES[dimension],
                [(DIMENSION_NAMES[dimension], "text")]
                + [(STAGE_NAMES[s], "int") for s in STAGES]
                + [(_l("Enrolled of first touches (%)"), "percent")],
            )
        )
        for row in rows:
            table.rows.append(
                [
                    key_label(dimension, row.key, labels),
                    *[
                        Link(count, _families_link(period, n, dimension, row.key))
                        for n, count in enumerate(row.counts)
                    ],
                    row.overall,
                ]
            )
    channels = result.breakdowns["channel"]
    page.charts["by_channel"] = charts.bar_chart(
        str(DIMENSION_NAMES["channel"]),
        [key_label("channel", r.key, {}) for r in channels],
        [
            (str(STAGE_NAMES["first_touch"]), [r.counts[0] for r in channels]),
            (str(STAGE_NAMES["enrolled"]), [r.counts[-1] for r in channels]),
        ],
    )
    lost = page.add(
        Table("lost", _l("Lost leads by reason"), [(_l("Reason"), "text"), (_l("Leads"), "int")])
    )
    for reason, count in result.lost:
        lost.rows.append(
            [
                reason or str(NONE),
                Link(
                    count,
                    url_for(
                        "dashboard.funnel_families",
                        stage=STAGES[0],
                        dimension="lost",
                        key=reason,
                        **period.args(),
                    ),
                ),
            ]
        )
    return page


def families(
    institution: Institution, period: Period, stage: int, dimension: str, key: str
) -> Page:
    page = Page()
    table = page.add(
        Table(
            "families",
            _l("Families"),
            [
                (_l("Parent"), "text"),
                (_l("Phone"), "text"),
                (_l("First seen"), "day"),
                (_l("Furthest stage"), "text"),
            ],
        )
    )
    for family in queries.funnel_families(institution, period, stage, dimension, key):
        table.rows.append(
            [
                Link(
                    family.parent_name,
                    url_for("contacts.contact_detail", contact_id=family.contact_id),
                ),
                family.phone,
                family.touch_at.astimezone(institution.zone).date(),
                str(STAGE_NAMES[STAGES[family.rank]]),
            ]
        )
    return page


# --- community -------------------------------------------------------------------------------


def community(institution: Institution, period: Period, today: date) -> Page:
    page = Page()
    groups = page.add(
        Table(
            "groups",
            _l("Groups"),
            [
                (_l("Group"), "text"),
                (_l("Members"), "int"),
                (_l("Daily active (average)"), "float"),
                (_l("Weekly active"), "int"),
                (_l("Monthly active"), "int"),
                (_l("DAU/MAU (%)"), "percent"),
                (_l("Posts per day"), "float"),
                (_l("Announcements"), "int"),
                (_l("Announcements read (%)"), "percent"),
            ],
        )
    )
    health = queries.group_health(institution, period)
    for g in health:
        groups.rows.append(
            [
                Link(g.title, url_for("groups.group_detail", group_id=g.group_id)),
                g.members,
                g.dau,
                g.wau,
                g.mau,
                g.stickiness,
                g.posts_per_day,
                g.announcements,
                g.read_rate,
            ]
        )
    if health:
        page.charts["groups"] = charts.bar_chart(
            str(_l("Active members")),
            [g.title for g in health],
            [
                (str(_l("Daily active (average)")), [g.dau for g in health]),
                (str(_l("Weekly active")), [g.wau for g in health]),
                (str(_l("Monthly active")), [g.mau for g in health]),
            ],
        )
    camps = page.add(
        Table(
            "camps",
            _l("Check-ins per camp day"),
            [
                (_l("Camp"), "text"),
                (_l("Day"), "day"),
                (_l("Checked in"), "int"),
                (_l("Children"), "int"),
                (_l("Rate (%)"), "percent"),
            ],
        )
    )
    days = queries.camp_days(institution, period)
    for d in days:
        camps.rows.append(
            [
                Link(d.title, url_for("camps.camp_detail", camp_id=d.camp_id)),
                d.day,
                d.checked_in,
                d.children,
                d.rate,
            ]
        )
    if days:
        by_camp: dict[str, dict[date, int | None]] = {}
        for d in days:
            by_camp.setdefault(d.title, {})[d.day] = d.rate
        page.charts["camps"] = charts.line_chart(
            str(_l("Check-in rate (%)")),
            [_day_label(day) for day in period.each_day()],
            [
                (title, [rates.get(day) for day in period.each_day()])
                for title, rates in by_camp.items()
            ],
        )
    cohorts = page.add(
        Table(
            "cohorts",
            _l("Weekly join cohorts: share active in the weeks after joining"),
            [(_l("Week of joining"), "day"), (_l("Joined"), "int")]
            + [(_l("Week %(n)s (%%)", n=n), "percent") for n in range(1, queries.COHORT_WEEKS + 1)],
        )
    )
    for cohort in queries.join_cohorts(institution, today):
        cohorts.rows.append(
            [
                cohort.week,
                cohort.joined,
                *[cohort.share(n) for n in range(1, queries.COHORT_WEEKS + 1)],
            ]
        )
    return page
