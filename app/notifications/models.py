from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, str_enum, utcnow


class Channel(enum.StrEnum):
    EMAIL = "email"


class OutboxStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"


class OutboxMessage(Base):
    """A notification to deliver: written in the same transaction as the change that causes
    it, delivered by a job, re-found by the sweeper if that job is lost.

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
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    institution_id: Mapped[int | None] = mapped_column(
        ForeignKey("institutions.id", ondelete="CASCADE"), index=True
    )
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
    sent_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_due(self, now: datetime) -> bool:
        return self.status == OutboxStatus.PENDING and self.send_at <= now

    @property
    def job_id(self) -> str:
        """The RQ job id of this message's current attempt; lets the sweeper tell a message
        whose job is waiting in Redis from one whose job was lost."""
        return f"outbox-{self.id}-{self.attempts}"
