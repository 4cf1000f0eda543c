from __future__ import annotations

import re
from datetime import datetime
from zoneinfo import ZoneInfo

from flask_babel import lazy_gettext as _l
from sqlalchemy import LargeBinary, String
from sqlalchemy.orm import Mapped, deferred, mapped_column

from app.db import Base, utcnow


class Institution(Base):
    """A tenant: one school. Everything else it owns carries its id."""

    __tablename__ = "institutions"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    slug: Mapped[str] = mapped_column(String(48), unique=True)
    timezone: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    locale: Mapped[str] = mapped_column(String(8))
    # ISO 3166 region: the default for phone numbers written without a country code.
    country: Mapped[str] = mapped_column(String(2), default="CN")
    contact_email: Mapped[str | None] = mapped_column(String(254))
    contact_phone: Mapped[str | None] = mapped_column(String(32))
    address: Mapped[str | None] = mapped_column(String(300))
    # Logos are small (capped at upload) and kept in the database so that any web instance
    # can serve them; deferred so that loading an institution never drags the bytes along.
    logo: Mapped[bytes | None] = deferred(mapped_column(LargeBinary))
    logo_content_type: Mapped[str | None] = mapped_column(String(32))
    logo_updated_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def has_logo(self) -> bool:
        return self.logo_updated_at is not None

    def __repr__(self) -> str:
        return f"<Institution {self.slug}>"


SLUG_PATTERN = r"^[a-z0-9](?:[a-z0-9-]{1,46}[a-z0-9])$"

# Slugs are the first segment of public URLs (/<slug>/...), so they must never shadow one
# of our own top-level paths, nor words a parent could mistake for an official page.
RESERVED_SLUGS = frozenset(
    [
        "about",
        "account",
        "accounts",
        "admin",
        "api",
        "app",
        "assets",
        "auth",
        "billing",
        "blog",
        "cohort",
        "csrf",
        "dashboard",
        "docs",
        "favicon",
        "healthz",
        "help",
        "invite",
        "invitations",
        "join",
        "lang",
        "legal",
        "login",
        "logout",
        "manage",
        "new",
        "password",
        "pricing",
        "privacy",
        "register",
        "reset",
        "robots",
        "security",
        "settings",
        "signin",
        "signout",
        "signup",
        "sitemap",
        "static",
        "staff",
        "status",
        "stripe",
        "support",
        "terms",
        "webhook",
        "webhooks",
        "www",
    ]
)

# Currencies offered at signup: those of the markets Cohort serves first.
CURRENCIES = (
    "CNY",
    "HKD",
    "TWD",
    "MOP",
    "SGD",
    "MYR",
    "JPY",
    "KRW",
    "USD",
    "CAD",
    "AUD",
    "NZD",
    "GBP",
    "EUR",
    "CHF",
)
LOCALES = ("zh_CN", "en")


def slug_problem(slug: str):
    """Why `slug` cannot be used (a translatable message), or None."""
    if not re.fullmatch(SLUG_PATTERN, slug or ""):
        return _l(
            "Use 3 to 48 lowercase letters, digits and hyphens, starting and ending with "
            "a letter or digit."
        )
    if slug in RESERVED_SLUGS:
        return _l("This address is reserved. Try another one.")
    return None
