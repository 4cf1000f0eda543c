"""Read-only queries of institutions (the tenant itself: `app.tenancy` finds the bound one)."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.institutions.models import Institution


def slug_taken(slug: str) -> bool:
    return db.session.scalar(select(Institution.id).where(Institution.slug == slug)) is not None
