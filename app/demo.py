"""Demo data for `cohort dev`: an institution and its owner, created through the same
services a real signup uses. Safe to run again: what exists is left alone."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from app.extensions import db
from app.institutions import services as institutions
from app.institutions.models import Institution

DEMO_SLUG = "sunrise"
DEMO_EMAIL = "owner@sunrise.example"
DEMO_PASSWORD = "cohort-demo-2026"  # noqa: S105 - printed to the developer on purpose


@dataclass(frozen=True)
class Demo:
    slug: str
    email: str
    password: str
    created: bool


def seed() -> Demo:
    institution = db.session.scalar(select(Institution).where(Institution.slug == DEMO_SLUG))
    created = institution is None
    if created:
        institution, _owner = institutions.sign_up(
            name="晨光教育 Sunrise Learning",
            slug=DEMO_SLUG,
            timezone="Asia/Shanghai",
            currency="CNY",
            locale="zh_CN",
            owner_name="王老师",
            email=DEMO_EMAIL,
            password=DEMO_PASSWORD,
        )
        institution.contact_phone = "+8613800138000"
        institution.address = "上海市徐汇区漕溪北路 88 号"
        db.session.commit()
    # Plain values only: touching the ORM object after this would open a new transaction,
    # and on SQLite an idle open transaction blocks the web server and the worker.
    db.session.remove()
    return Demo(DEMO_SLUG, DEMO_EMAIL, DEMO_PASSWORD, created)
