from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.payments.models import Payment


def payments_by_id(ids: list[int]) -> dict[int, Payment]:
    if not ids:
        return {}
    return {p.id: p for p in db.session.scalars(select(Payment).where(Payment.id.in_(ids)))}
