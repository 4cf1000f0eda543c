"""Loyalty jobs: crediting a referral once its event has committed."""

from __future__ import annotations

from sqlalchemy import select

from app.contacts.models import Contact
from app.extensions import db
from app.jobs import job
from app.loyalty import services
from app.loyalty.models import ReferralEvent


@job(queue="notifications", timeout=120, retries=3)
def credit_referral(institution, contact_id: int, event: str, source: str | None) -> bool:
    """Credit the family that brought this one for `event` (safe to run twice: a
    referral is credited once per referred family and event)."""
    contact = db.session.scalar(
        select(Contact).where(Contact.id == contact_id, Contact.institution_id == institution.id)
    )
    if contact is None:
        return False
    return services.credit_referral(institution, contact, ReferralEvent(event), source) is not None
