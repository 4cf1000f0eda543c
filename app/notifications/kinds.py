"""Parent messages: the kinds an institution can reword, their variables, their default
texts (templates/messages/<kind>.<locale>.txt: the subject on the first line, then a blank
line, then the body) and how a text is rendered.

Texts are Jinja templates rendered in a sandbox: an institution's staff write them, so
they get variables and nothing else.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from datetime import date

from babel.dates import format_date
from babel.numbers import format_currency
from flask_babel import lazy_gettext as _l
from jinja2 import StrictUndefined, Template, TemplateError, Undefined
from jinja2.sandbox import SandboxedEnvironment

from app.config import PROJECT_ROOT
from app.localtime import format_time
from app.money import to_major

DEFAULTS_DIR = PROJECT_ROOT / "templates" / "messages"


@dataclass(frozen=True)
class Kind:
    label: object
    variables: tuple[str, ...]


_LESSON = ("child_name", "course_title", "lesson_time", "place", "online_url")
_COMMON = ("institution_name", "parent_name", "link")
_TEAM = (
    "child_name",
    "campaign_title",
    "course_title",
    "amount",
    "team_size",
    "seats_left",
    "deadline",
    "team_link",
    "paid_at_once",
)
# The group a confirmation offers (its link is empty when the course has none).
_GROUP = ("group_title", "group_kind", "group_link")
_VIP = ("tier_name", "last_day")
_FLASH = ("campaign_title", "course_title", "amount", "sale_link")
KINDS = {
    "registration_confirmed": Kind(
        _l("Registration confirmed"), (*_COMMON, *_LESSON, "lessons", *_GROUP)
    ),
    "lesson_reminder": Kind(_l("Lesson reminder"), (*_COMMON, *_LESSON)),
    "lesson_moved": Kind(_l("Lesson moved"), (*_COMMON, *_LESSON, "old_lesson_time")),
    "lesson_cancelled": Kind(_l("Lesson cancelled"), (*_COMMON, *_LESSON)),
    "waitlist_promoted": Kind(_l("Place from the waitlist"), (*_COMMON, *_LESSON)),
    "sign_in_link": Kind(_l("Sign-in link"), ("institution_name", "parent_name", "link")),
    "team_joined": Kind(_l("Group buy: joined a team"), (*_COMMON, *_TEAM)),
    "team_succeeded": Kind(_l("Group buy: team full, payment taken"), (*_COMMON, *_TEAM, *_GROUP)),
    "team_failed": Kind(_l("Group buy: team did not fill"), (*_COMMON, *_TEAM)),
    "hold_released": Kind(_l("Group buy: card hold released"), (*_COMMON, *_TEAM)),
    "team_nudge": Kind(_l("Group buy: reminder to the team leader"), (*_COMMON, *_TEAM)),
    "camp_nudge": Kind(
        _l("Check-in camp: reminder to check in"),
        (*_COMMON, "child_name", "camp_title", "task", "window_end", "camp_link"),
    ),
    "group_reply": Kind(
        _l("Group: a teacher replied to the family's post or check-in"),
        (*_COMMON, "group_title", "post", "reply", "group_link"),
    ),
    "referral_credited": Kind(
        _l("Referral: a friend the family brought was credited"),
        (*_COMMON, "friend_name", "event", "points"),
    ),
    "flash_starting": Kind(
        _l("Flash sale: starting in 5 minutes"), (*_COMMON, *_FLASH, "start_time")
    ),
    "flash_paid": Kind(
        _l("Flash sale: seat paid, child enrolled"),
        (*_COMMON, *_FLASH, "child_name", "group_link", "group_title", "group_kind"),
    ),
    "flash_expired": Kind(
        _l("Flash sale: order not paid in time"), (*_COMMON, *_FLASH, "child_name", "pay_deadline")
    ),
    "flash_refunded": Kind(
        _l("Flash sale: late payment refunded"), (*_COMMON, *_FLASH, "child_name")
    ),
    "group_announcement": Kind(
        _l("Group: announcement"), (*_COMMON, "group_title", "announcement", "group_link")
    ),
    "vip_started": Kind(_l("VIP: membership started or renewed"), (*_COMMON, *_VIP)),
    "vip_expiring": Kind(_l("VIP: membership ends soon"), (*_COMMON, *_VIP, "renew_link")),
}
VARIABLE_LABELS = {
    "institution_name": _l("your institution's name"),
    "parent_name": _l("the parent's name"),
    "link": _l("the link to the family's own page"),
    "child_name": _l("the child's name"),
    "course_title": _l("the course"),
    "lesson_time": _l("the lesson's date and time"),
    "old_lesson_time": _l("the lesson's previous date and time"),
    "place": _l("where the lesson is"),
    "online_url": _l("the online lesson's link"),
    "lessons": _l("every booked lesson, one per line"),
    "campaign_title": _l("the group buy"),
    "amount": _l("the amount held or paid"),
    "team_size": _l("families per team"),
    "seats_left": _l("seats left in the team"),
    "deadline": _l("the team's deadline"),
    "team_link": _l("the link to the team's page"),
    "paid_at_once": _l(
        "true when the group buy charges at once (refunded if the team does not fill), "
        "false when it holds the money"
    ),
    "camp_title": _l("the check-in camp"),
    "task": _l("the day's task"),
    "window_end": _l("when today's check-ins close"),
    "camp_link": _l("the link to the camp's page"),
    "group_title": _l("the group"),
    "group_kind": _l("the group's kind: trial, class, vip or open"),
    "announcement": _l("the announcement's text"),
    "sale_link": _l("the link to the flash sale's page"),
    "start_time": _l("when the flash sale starts"),
    "pay_deadline": _l("when the order had to be paid by"),
    "friend_name": _l("the friend's name, masked"),
    "event": _l("what the friend did (registered, paid, joined a team)"),
    "points": _l("the points earned"),
    "post": _l("what the family posted"),
    "reply": _l("the teacher's reply"),
    "group_link": _l("the link to the group's page"),
    "tier_name": _l("the VIP tier"),
    "last_day": _l("the membership's last day"),
    "renew_link": _l("the link to renew on the family's page"),
}
SAMPLE_CONTEXT = {
    "institution_name": "Sunrise Learning",
    "parent_name": "王芳",
    "link": "https://cohort.example/sunrise/me/t/…",
    "child_name": "乐乐",
    "course_title": "Maths Olympiad trial",
    "starts_at": "2026-12-05T11:00:00+00:00",
    "old_starts_at": "2026-12-04T11:00:00+00:00",
    "timezone": "Asia/Shanghai",
    "place": "Room 3, 88 Renmin Road",
    "online_url": "",
    "lessons": [],
    "campaign_title": "Summer maths group buy",
    "amount_minor": 19900,
    "currency": "CNY",
    "team_size": 3,
    "seats_left": 1,
    "expires_at": "2026-12-06T11:00:00+00:00",
    "team_link": "https://cohort.example/sunrise/gb/…/t/…",
    "paid_at_once": False,
    "camp_title": "21天英语阅读打卡营",
    "task": "朗读第3课课文并录一段音频",
    "window_end": "22:00",
    "camp_link": "https://cohort.example/sunrise/camp/…",
    "group_title": "三年级数学家长群",
    "group_kind": "class",
    "announcement": "本周六的试听课改在3号教室，请提前10分钟到。",
    "group_link": "https://cohort.example/sunrise/g/…",
    "post": "✅ 21天英语阅读打卡营 · 第3天 · 乐乐\n今天读了10页",
    "reply": "读得很流利，继续加油！",
    "sale_starts_at": "2026-12-05T12:00:00+00:00",
    "pay_by": "2026-12-05T12:10:00+00:00",
    "sale_link": "https://cohort.example/sunrise/fs/…",
    "friend_name": "李*",
    "event": "报名了试听课",
    "points": 100,
    "tier_name": "金卡会员",
    "last_day": "2026-12-31",
    "renew_link": "https://cohort.example/sunrise/me/t/…#vip",
}

_lenient = SandboxedEnvironment(undefined=Undefined, autoescape=False)
_strict = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)


def default_text(kind: str, locale: str) -> tuple[str, str]:
    """The subject and body shipped with Cohort for this kind in this language."""
    path = DEFAULTS_DIR / f"{kind}.{locale}.txt"
    if not path.exists():
        path = DEFAULTS_DIR / f"{kind}.en.txt"
    subject, _blank, body = path.read_text(encoding="utf-8").partition("\n\n")
    return subject.strip(), body.strip()


def variables(context: dict, locale: str) -> dict:
    """What a text can use: the stored context with its instants formatted for people."""
    zone = context.get("timezone", "UTC")
    values = dict(context)
    values["lesson_time"] = format_time(context.get("starts_at"), zone, locale)
    values["old_lesson_time"] = format_time(context.get("old_starts_at"), zone, locale)
    values["deadline"] = format_time(context.get("expires_at"), zone, locale)
    values["start_time"] = format_time(context.get("sale_starts_at"), zone, locale)
    values["pay_deadline"] = format_time(context.get("pay_by"), zone, locale)
    if context.get("last_day"):  # a day of the institution's, as an ISO date
        values["last_day"] = format_date(date.fromisoformat(context["last_day"]), locale=locale)
    if context.get("amount_minor") is not None:
        currency = context["currency"]
        values["amount"] = format_currency(
            to_major(context["amount_minor"], currency), currency, locale=locale
        )
    values["lessons"] = "\n".join(
        " · ".join(filter(None, [format_time(item["starts_at"], zone, locale), item.get("place")]))
        for item in context.get("lessons") or []
    )
    return values


def render(subject: str, body: str, context: dict, locale: str, strict: bool = False):
    """(subject, body) rendered with `context`. Strict rendering (the editor's preview and
    check) raises TemplateError on a syntax error or an unknown variable; delivery renders
    leniently, so a message is never lost to a typo."""
    values = variables(context, locale)
    body = _compiled(strict, body).render(values).strip()
    # A line left empty by an {% if %} that did not apply is not a paragraph break.
    return _compiled(strict, subject).render(values).strip(), re.sub(r"\n{3,}", "\n\n", body)


@functools.lru_cache(maxsize=1024)
def _compiled(strict: bool, source: str) -> Template:
    """A text compiled once (a reminder wave renders the same few texts thousands of
    times)."""
    return (_strict if strict else _lenient).from_string(source)


def check(subject: str, body: str, locale: str) -> str | None:
    """The error a text would raise on the sample context, or None if it renders."""
    try:
        render(subject, body, SAMPLE_CONTEXT, locale, strict=True)
    except TemplateError as error:
        return str(error)
    return None
