"""Instants and the institution's wall clock.

Instants are stored as aware UTC values; people type and read them as times of the
institution's time zone. Every conversion takes the zone explicitly, so it works the same
in a request, a job or a test.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from babel.dates import format_date, format_datetime

_TIME_FORMATS = {"zh_CN": "M月d日 EEE HH:mm", "en": "EEE d MMM, HH:mm"}
_DAY_FORMATS = {"zh_CN": "M月d日 EEE", "en": "EEE d MMM"}


def from_local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """A naive date-time typed in `zone` as an aware UTC value."""
    if value is None:
        return None
    return value.replace(tzinfo=zone).astimezone(UTC)


def to_local(value: datetime | None, zone: ZoneInfo) -> datetime | None:
    """An aware value as a naive date-time in `zone` (for form inputs)."""
    if value is None:
        return None
    return value.astimezone(zone).replace(tzinfo=None)


def local_day_start(day: date, zone: ZoneInfo) -> datetime:
    """Midnight of `day` in `zone` (aware), for date filters and daily figures."""
    return datetime.combine(day, time.min, tzinfo=zone)


def format_time(value: str | datetime | None, timezone: str, locale: str) -> str:
    """An instant the way people write it in `locale` ("11月26日 周四 19:00")."""
    if not value:
        return ""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return format_datetime(
        value,
        _TIME_FORMATS.get(locale, _TIME_FORMATS["en"]),
        tzinfo=ZoneInfo(timezone),
        locale=locale,
    )


def format_day(value: date | None, locale: str) -> str:
    """A day the way people write it in `locale` ("12月1日 周二")."""
    if not value:
        return ""
    return format_date(value, _DAY_FORMATS.get(locale, _DAY_FORMATS["en"]), locale=locale)
