from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from app.db import scoped_select
from app.extensions import db
from app.notifications.models import Channel, OutboxMessage, OutboxStatus
from app.paging import Page, paginate


def due_messages(now: datetime, limit: int = 1000) -> list[OutboxMessage]:
    """Pending messages whose time has come, oldest first, across every institution."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.send_at <= now)
            .order_by(OutboxMessage.send_at)
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class OutboxFilters:
    status: OutboxStatus | None = None
    channel: Channel | None = None
    kind: str = ""
    recipient: str = ""


def institution_messages(institution, filters: OutboxFilters, page: int, per_page: int) -> Page:
    """One page of the institution's messages, newest first."""
    query = scoped_select(OutboxMessage, institution)
    if filters.status is not None:
        query = query.where(OutboxMessage.status == filters.status)
    if filters.channel is not None:
        query = query.where(OutboxMessage.channel == filters.channel)
    if filters.kind:
        query = query.where(OutboxMessage.template == filters.kind)
    if filters.recipient:
        query = query.where(OutboxMessage.recipient.contains(filters.recipient, autoescape=True))
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    return paginate(query, page, per_page)


def failed_count(institution) -> int:
    query = scoped_select(OutboxMessage, institution).where(
        OutboxMessage.status == OutboxStatus.FAILED
    )
    return db.session.scalar(select(func.count()).select_from(query.subquery()))
