"""Loyalty: crediting and spending points, rewards, VIP memberships and referrals.

Services change state and flush; the request or job commits (see app/db.py)."""

from __future__ import annotations

from app.db import utcnow
from app.extensions import db
from app.loyalty.models import PointsEntry, PointsReason


def add_points(
    institution,
    contact,
    amount: int,
    reason: PointsReason,
    source_key: str,
    *,
    note: str | None = None,
    user=None,
) -> PointsEntry | None:
    """Add one entry to a family's ledger, once per `source_key` (the event that earned
    or spent it, such as `checkin:<id>`): a second call with the same key, from a retried
    job or a parallel request, adds nothing and returns None."""
    if amount == 0:
        return None
    return db.insert_unless_exists(
        PointsEntry,
        {
            "institution_id": institution.id,
            "contact_id": contact.id,
            "amount": amount,
            "reason": reason.value,
            "source_key": source_key,
            "note": note,
            "user_id": getattr(user, "id", None),
            "created_at": utcnow(),
        },
        conflict=["institution_id", "source_key"],
    )
