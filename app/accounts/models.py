from __future__ import annotations

import enum
import secrets
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app.db import Base, TenantScoped, str_enum, utcnow
from app.institutions.models import Institution


class Role(enum.StrEnum):
    OWNER = "owner"
    ADMIN = "admin"
    STAFF = "staff"

    @property
    def label(self):
        return ROLE_LABELS[self]


ROLE_LABELS = {Role.OWNER: _l("Owner"), Role.ADMIN: _l("Admin"), Role.STAFF: _l("Staff")}
MANAGERS = (Role.OWNER, Role.ADMIN)


def new_auth_token() -> str:
    return secrets.token_urlsafe(32)


class User(Base):
    """A person who signs in. Users are global; what they may do is per institution, through
    their memberships."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)  # stored lower-cased
    name: Mapped[str] = mapped_column(String(80))
    password_hash: Mapped[str] = mapped_column(String(255))
    # What the session cookie identifies the user by (Flask-Login's "alternative token").
    # Rotated when the password changes, which signs the user out everywhere.
    auth_token: Mapped[str] = mapped_column(String(64), unique=True, default=new_auth_token)
    is_active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_login_at: Mapped[datetime | None]

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", cascade="all, delete-orphan"
    )

    # Flask-Login protocol.
    is_anonymous = False

    @property
    def is_authenticated(self) -> bool:
        return True

    def get_id(self) -> str:
        return self.auth_token

    def __repr__(self) -> str:
        return f"<User {self.email}>"


class Membership(TenantScoped, Base):
    """A user's role in one institution."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("institution_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    user: Mapped[User] = relationship(back_populates="memberships")
    institution: Mapped[Institution] = relationship()

    @property
    def is_manager(self) -> bool:
        return self.role in MANAGERS


class Invitation(TenantScoped, Base):
    """An e-mailed invitation to join an institution with a role. The link carries a signed,
    expiring token naming this row; the row makes it single-use and revocable."""

    __tablename__ = "invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), index=True)
    role: Mapped[Role] = mapped_column(str_enum(Role))
    invited_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    sent_count: Mapped[int] = mapped_column(default=0)
    accepted_at: Mapped[datetime | None]
    accepted_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    revoked_at: Mapped[datetime | None]

    institution: Mapped[Institution] = relationship()
    invited_by: Mapped[User | None] = relationship(foreign_keys=[invited_by_id])

    def is_expired(self, now: datetime) -> bool:
        return self.accepted_at is None and self.revoked_at is None and now >= self.expires_at
