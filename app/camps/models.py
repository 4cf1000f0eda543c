"""Check-in camps (打卡营): a daily habit kept inside a group.

A camp belongs to a group and runs on some days between two dates, inside a daily window
in the institution's time zone, with one task a day. A family checks in once a day for
each child (the database refuses a second row for the same camp, child and day); a
check-in is also a post in the group's feed, so its pictures go through the group's
image handling and moderation. A missed day can be made up with a make-up card (补卡)
within a few days; each child has a set number per camp, claimed by a conditional
UPDATE of the child's camp row. Streaks are derived from the check-in rows, never stored.
"""

from __future__ import annotations

import secrets
from datetime import date, datetime, time, timedelta

from sqlalchemy import JSON, CheckConstraint, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, deferred, mapped_column, relationship

from app.contacts.models import Contact, Student
from app.db import Base, TenantScoped, parent_id, utcnow
from app.groups.models import Group

MAX_CHECKIN_LENGTH = 2000


def new_code() -> str:
    return secrets.token_urlsafe(8)


class Camp(TenantScoped, Base):
    """A check-in camp. `weekdays` lists the days it runs (Monday is 0); empty means
    every day. The window and the nudge time are wall-clock times in the institution's
    time zone."""

    __tablename__ = "camps"
    __table_args__ = (
        UniqueConstraint("institution_id", "code"),
        CheckConstraint("ends_on >= starts_on", name="camp_dates_in_order"),
        CheckConstraint("window_end > window_start", name="camp_window_in_order"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    group_id: Mapped[int] = parent_id("groups", ondelete="CASCADE", index=True)
    code: Mapped[str] = mapped_column(String(16), default=new_code)
    title: Mapped[str] = mapped_column(String(120))
    description: Mapped[str | None] = mapped_column(Text)
    starts_on: Mapped[date]
    ends_on: Mapped[date]
    weekdays: Mapped[list] = mapped_column(JSON, default=list)
    window_start: Mapped[time] = mapped_column(default=time(6, 0))
    window_end: Mapped[time] = mapped_column(default=time(22, 0))
    makeup_cards: Mapped[int] = mapped_column(default=2)  # per child and camp
    makeup_days: Mapped[int] = mapped_column(default=3)  # how far back a card reaches
    nudge_at: Mapped[time | None] = mapped_column(default=time(20, 0))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    group: Mapped[Group] = relationship(foreign_keys=[group_id])

    def runs_on(self, day: date) -> bool:
        return self.starts_on <= day <= self.ends_on and (
            not self.weekdays or day.weekday() in self.weekdays
        )

    def days(self, until: date | None = None) -> list[date]:
        """The camp's days, in order, up to `until` (inclusive) if given."""
        last = self.ends_on if until is None else min(self.ends_on, until)
        count = (last - self.starts_on).days + 1
        return [
            day
            for day in (self.starts_on + timedelta(days=n) for n in range(max(count, 0)))
            if self.runs_on(day)
        ]

    def in_window(self, moment: time) -> bool:
        """Whether a wall-clock time is inside the daily window (its end is exclusive:
        a 06:00–22:00 camp takes 21:59 and refuses 22:00)."""
        return self.window_start <= moment < self.window_end


class CampTask(TenantScoped, Base):
    """The day's task: a prompt, and optionally a picture or a file to use."""

    __tablename__ = "camp_tasks"
    __table_args__ = (UniqueConstraint("camp_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    camp_id: Mapped[int] = parent_id("camps", ondelete="CASCADE")
    day: Mapped[date]
    prompt: Mapped[str] = mapped_column(Text)
    file_name: Mapped[str | None] = mapped_column(String(120))
    file_type: Mapped[str | None] = mapped_column(String(80))
    file_data: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))


class CampChild(TenantScoped, Base):
    """A child taking part in a camp: the make-up cards used (moved only by a
    conditional UPDATE, which keeps it at most the camp's number) and whether the family
    shows the child's name on the leaderboard."""

    __tablename__ = "camp_children"
    __table_args__ = (UniqueConstraint("camp_id", "student_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    camp_id: Mapped[int] = parent_id("camps", ondelete="CASCADE")
    student_id: Mapped[int] = parent_id("students", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    makeup_used: Mapped[int] = mapped_column(default=0)
    hides_name: Mapped[bool] = mapped_column(default=False)
    joined_at: Mapped[datetime] = mapped_column(default=utcnow)

    student: Mapped[Student] = relationship(foreign_keys=[student_id])
    contact: Mapped[Contact] = relationship(foreign_keys=[contact_id])


class CheckIn(TenantScoped, Base):
    """One child's check-in for one camp day; its text and pictures are a post in the
    group's feed (`post_id`)."""

    __tablename__ = "camp_checkins"
    __table_args__ = (UniqueConstraint("camp_id", "student_id", "day"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    camp_id: Mapped[int] = parent_id("camps", ondelete="CASCADE")
    student_id: Mapped[int] = parent_id("students", ondelete="CASCADE", index=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    day: Mapped[date]
    is_makeup: Mapped[bool] = mapped_column(default=False)
    post_id: Mapped[int | None] = parent_id("group_posts")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    student: Mapped[Student] = relationship(foreign_keys=[student_id])
