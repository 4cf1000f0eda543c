"""Loyalty: reading the points ledger, rewards, memberships and referrals."""

from __future__ import annotations

from sqlalchemy import func, select

from app.extensions import db
from app.loyalty.models import PointsEntry, PointsRules


def balance(contact) -> int:
    """A family's points: the sum of its ledger, never a stored number."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.institution_id == contact.institution_id,
            PointsEntry.contact_id == contact.id,
        )
    )
    return int(total)


def ledger(contact, limit: int = 50) -> list[PointsEntry]:
    """A family's newest entries first."""
    return list(
        db.session.scalars(
            select(PointsEntry)
            .where(
                PointsEntry.institution_id == contact.institution_id,
                PointsEntry.contact_id == contact.id,
            )
            .order_by(PointsEntry.id.desc())
            .limit(limit)
        )
    )


def points_rules(institution) -> PointsRules:
    """The institution's rules, or the defaults (unsaved) when staff never set them."""
    rules = db.session.scalar(
        select(PointsRules).where(PointsRules.institution_id == institution.id)
    )
    return rules or PointsRules(
        institution_id=institution.id,
        **{column.name: column.default.arg for column in _rule_columns()},
    )


def _rule_columns():
    return [
        column
        for column in PointsRules.__table__.columns
        if column.name not in ("id", "institution_id") and column.default is not None
    ]
