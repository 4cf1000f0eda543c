"""One page of a staff list."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, func, select

from app.extensions import db


@dataclass(frozen=True)
class Page:
    items: list
    total: int
    number: int  # counted from 1
    per_page: int

    @property
    def count(self) -> int:
        """How many pages the list has (at least one, empty or not)."""
        return max((self.total + self.per_page - 1) // self.per_page, 1)


def paginate(query: Select, number: int, per_page: int) -> Page:
    """Page `number` of `query`'s rows, with the total number of rows."""
    total = db.session.scalar(select(func.count()).select_from(query.order_by(None).subquery()))
    rows = db.session.scalars(query.limit(per_page).offset((number - 1) * per_page)).all()
    return Page(list(rows), total, number, per_page)
