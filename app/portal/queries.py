from __future__ import annotations

from sqlalchemy import select

from app.contacts.models import Contact
from app.extensions import db
from app.notifications.models import Channel, OutboxMessage, OutboxStatus


def inbox(contact: Contact, limit: int = 30) -> list[OutboxMessage]:
    """The in-app messages a family has been sent, newest first."""
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.institution_id == contact.institution_id,
                OutboxMessage.contact_id == contact.id,
                OutboxMessage.channel == Channel.INAPP,
                OutboxMessage.status == OutboxStatus.SENT,
            )
            .order_by(OutboxMessage.sent_at.desc(), OutboxMessage.id.desc())
            .limit(limit)
        )
    )
