from __future__ import annotations

from datetime import datetime

from sqlalchemy import func, select

from app.db import paginate
from app.extensions import db
from app.notifications.models import OutboxMessage, OutboxStatus
from app.tenancy import scoped_select


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


def institution_messages(status: OutboxStatus | None, page: int, per_page: int = 50):
    """The current institution's messages, newest first, with the total for paging."""
    query = scoped_select(OutboxMessage)
    if status is not None:
        query = query.where(OutboxMessage.status == status)
    query = query.order_by(OutboxMessage.created_at.desc(), OutboxMessage.id.desc())
    return paginate(query, page, per_page)


def failed_count() -> int:
    query = scoped_select(OutboxMessage).where(OutboxMessage.status == OutboxStatus.FAILED)
    return db.session.scalar(select(func.count()).select_from(query.subquery()))
