from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import (
    JSON,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantScoped, str_enum, utcnow


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"
    INAPP = "inapp"  # shown on the parent's page; "sending" it just makes it visible


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxMessage(Base):
    """A notification to deliver: written in the same transaction as the change that causes
    it, delivered by the deliverer (app.notifications.tasks), which claims due rows.

    Not TenantScoped: platform messages (a password reset for a user of several institutions)
    belong to no institution, so `institution_id` is nullable here, and it is the one
    exception the tenancy tests allow. The dedupe key is unique per institution, and unique
    among platform messages, through two partial indexes.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index(
            "uq_outbox_messages_institution_dedupe",
            "institution_id",
            "dedupe_key",
            unique=True,
            postgresql_where=text("institution_id IS NOT NULL"),
            sqlite_where=text("institution_id IS NOT NULL"),
        ),
        Index(
            "uq_outbox_messages_platform_dedupe",
            "dedupe_key",
            unique=True,
            postgresql_where=text("institution_id IS NULL"),
            sqlite_where=text("institution_id IS NULL"),
        ),
        Index("ix_outbox_messages_due", "status", "send_at"),
        Index("ix_outbox_messages_topic", "institution_id", "topic"),
        # A parent message's family is of the message's institution (TenantScoped's rule,
        # written out: this table is not TenantScoped, platform messages have neither).
        ForeignKeyConstraint(
            ["institution_id", "contact_id"],
            ["contacts.institution_id", "contacts.id"],
            ondelete="CASCADE",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int | None] = mapped_column(
        ForeignKey("institutions.id", ondelete="CASCADE"), index=True
    )
    # The family a parent message is for (in-app messages are found through it).
    contact_id: Mapped[int | None] = mapped_column(index=True)
    # What the message is about ("seat:42"), so that the messages of a cancelled seat or a
    # moved lesson can be found and cancelled before they are sent.
    topic: Mapped[str | None] = mapped_column(String(64))
    channel: Mapped[Channel] = mapped_column(str_enum(Channel))
    recipient: Mapped[str] = mapped_column(String(254))
    template: Mapped[str] = mapped_column(String(64))
    context: Mapped[dict] = mapped_column(JSON, default=dict)
    locale: Mapped[str] = mapped_column(String(8))
    dedupe_key: Mapped[str] = mapped_column(String(200))
    status: Mapped[OutboxStatus] = mapped_column(
        str_enum(OutboxStatus), default=OutboxStatus.PENDING
    )
    send_at: Mapped[datetime] = mapped_column(default=utcnow)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    # The text as it was delivered (templates can be edited later).
    subject: Mapped[str | None] = mapped_column(String(200))
    body: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
    # A deliverer is sending it: others leave it alone until then (and take it up after,
    # should that deliverer have died).
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_due(self, now: datetime) -> bool:
        return self.status == OutboxStatus.PENDING and self.send_at <= now


class MessageTemplate(TenantScoped, Base):
    """An institution's own wording of one kind of parent message in one language; without
    one, the default in templates/messages/ is used."""

    __tablename__ = "message_templates"
    __table_args__ = (UniqueConstraint("institution_id", "kind", "locale"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    locale: Mapped[str] = mapped_column(String(8))
    subject: Mapped[str] = mapped_column(String(200))
    body: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


DEFAULT_MINUTES_BEFORE = [60, 10]
DEFAULT_MORNING_TIME = "08:00"
DEFAULT_CHANNELS = [Channel.EMAIL.value, Channel.SMS.value, Channel.INAPP.value]


class ReminderSettings(TenantScoped, Base):
    """When lesson reminders go out and on which channels; one row per institution,
    created with the defaults the first time it is needed."""

    __tablename__ = "reminder_settings"
    __table_args__ = (UniqueConstraint("institution_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # "HH:MM" on the lesson's day in the institution's time zone, or None for no such
    # reminder.
    morning_time: Mapped[str | None] = mapped_column(String(5), default=DEFAULT_MORNING_TIME)
    minutes_before: Mapped[list] = mapped_column(JSON, default=lambda: list(DEFAULT_MINUTES_BEFORE))
    channels: Mapped[list] = mapped_column(JSON, default=lambda: list(DEFAULT_CHANNELS))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


@dataclass(frozen=True)
class ReminderTerms:
    """When an institution's reminders go out and on which channels, as plain values: kept
    in each web process's memory while they stand (app.notifications.services
    .reminder_terms), so a rush of registrations does not read the row for every seat."""

    morning_time: str | None
    minutes_before: tuple[int, ...]
    channels: tuple[str, ...]

    @classmethod
    def of(cls, settings: ReminderSettings | None) -> ReminderTerms:
        """The settings' terms; the defaults for an institution that never saved any."""
        if settings is None:
            return cls(DEFAULT_MORNING_TIME, tuple(DEFAULT_MINUTES_BEFORE), tuple(DEFAULT_CHANNELS))
        return cls(settings.morning_time, tuple(settings.minutes_before), tuple(settings.channels))
