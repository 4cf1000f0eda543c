from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, TenantScoped, parent_id, utcnow


def hash_code(code: str) -> str:
    return hashlib.sha256(code.encode()).hexdigest()


class SignInLink(TenantScoped, Base):
    """A one-time sign-in link sent to a parent who typed their phone number; only the
    hash of its code is kept, so the table does not hold working links."""

    __tablename__ = "portal_sign_in_links"

    id: Mapped[int] = mapped_column(primary_key=True)
    contact_id: Mapped[int] = parent_id("contacts", ondelete="CASCADE", index=True)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def is_usable(self, now: datetime) -> bool:
        return self.used_at is None and now < self.expires_at
