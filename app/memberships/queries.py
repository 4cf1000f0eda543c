"""Reads of VIP tiers and memberships: who is a VIP now, for how long, and what is due."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import Select, exists, func, select
from sqlalchemy.orm import aliased, selectinload

from app.db import scoped_select
from app.extensions import db
from app.institutions.models import Institution
from app.memberships.models import (
    WARN_DAYS,
    VipMembership,
    VipPurchase,
    VipTier,
    last_day_of,
    membership_end,
    warn_at,
)
from app.payments.models import Payment, PaymentStatus

PURPOSE = "vip"  # the purpose of a VIP membership's payments (its reference: the tier)


# --- tiers -------------------------------------------------------------------------------------


def all_tiers(institution) -> list[VipTier]:
    return list(
        db.session.scalars(
            scoped_select(VipTier, institution).order_by(
                VipTier.is_active.desc(), VipTier.price_amount, VipTier.id
            )
        )
    )


def active_tiers(institution) -> list[VipTier]:
    """The tiers staff can grant and, the paid ones, families can buy."""
    return [tier for tier in all_tiers(institution) if tier.is_active]


def tier_of(institution, tier_id: int) -> VipTier | None:
    return db.session.scalar(scoped_select(VipTier, institution).where(VipTier.id == tier_id))


def tier_created_with(institution, key: str) -> VipTier | None:
    """The tier a form with this one-time key created, if any."""
    return db.session.scalar(scoped_select(VipTier, institution).where(VipTier.create_key == key))


# --- who is a VIP ------------------------------------------------------------------------------


def active_membership(contact, now: datetime) -> VipMembership | None:
    """The family's membership that runs now (the one ending last, should two overlap)."""
    return db.session.scalar(
        select(VipMembership)
        .where(
            VipMembership.contact_id == contact.id,
            VipMembership.starts_at <= now,
            VipMembership.ends_at > now,
        )
        .options(selectinload(VipMembership.tier))
        .order_by(VipMembership.ends_at.desc())
        .limit(1)
    )


def is_vip(contact, now: datetime) -> bool:
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    VipMembership.contact_id == contact.id,
                    VipMembership.starts_at <= now,
                    VipMembership.ends_at > now,
                )
            )
        )
    )


def vip_contact_ids(contact_ids: Iterable[int], now: datetime) -> set[int]:
    """Which of these families are VIPs now: one query for a page's badges."""
    ids = sorted(set(contact_ids))
    if not ids:
        return set()
    return set(
        db.session.scalars(
            select(VipMembership.contact_id)
            .where(
                VipMembership.contact_id.in_(ids),
                VipMembership.starts_at <= now,
                VipMembership.ends_at > now,
            )
            .distinct()
        )
    )


def vip_until(contact, now: datetime) -> datetime | None:
    """When the family's VIP time ends, counting the renewals already bought: the latest
    end of its memberships not over yet (each new one starts where the last one ends, so
    there is no gap among them), or None if it has none."""
    return db.session.scalar(
        select(func.max(VipMembership.ends_at)).where(
            VipMembership.contact_id == contact.id, VipMembership.ends_at > now
        )
    )


def contact_memberships(contact) -> list[VipMembership]:
    """Every membership the family has had, the latest first."""
    return list(
        db.session.scalars(
            select(VipMembership)
            .where(VipMembership.contact_id == contact.id)
            .options(selectinload(VipMembership.tier))
            .order_by(VipMembership.ends_at.desc(), VipMembership.id.desc())
        )
    )


@dataclass(frozen=True)
class VipStatus:
    """A family's VIP memberships (the latest first), the one running now, and the days of
    its VIP time on the institution's calendar: the first day of a membership to come
    (with none running now), the last day (renewals included), and the last day of the
    membership that ended last."""

    memberships: list[VipMembership]
    current: VipMembership | None
    starts_on: date | None
    last_day: date | None
    ended_on: date | None


def vip_status(institution, contact, now: datetime) -> VipStatus:
    zone = institution.zone
    memberships = contact_memberships(contact)
    current = next((m for m in memberships if m.is_active(now)), None)
    to_come = [m.starts_at for m in memberships if m.starts_at > now]
    until = max((m.ends_at for m in memberships if m.ends_at > now), default=None)
    ended = next((m for m in memberships if m.ends_at <= now), None)
    return VipStatus(
        memberships=memberships,
        current=current,
        starts_on=min(to_come).astimezone(zone).date() if to_come and not current else None,
        last_day=last_day_of(until, zone) if until else None,
        ended_on=ended.last_day(zone) if ended else None,
    )


def next_term(institution, contact, days: int, now: datetime) -> tuple[datetime, datetime]:
    """When a membership of `days` days bought or granted now runs: from the end of the
    family's VIP time (a renewal, with no day lost) or, without one, from now."""
    starts_at = max(vip_until(contact, now) or now, now)
    return starts_at, membership_end(starts_at, days, institution.zone)


def purchase_of(payment: Payment) -> VipPurchase | None:
    """What a VIP payment buys (None for a payment started before purchases were kept)."""
    return db.session.scalar(
        select(VipPurchase).where(
            VipPurchase.institution_id == payment.institution_id,
            VipPurchase.payment_id == payment.id,
        )
    )


def granted_with(institution, key: str) -> VipMembership | None:
    """The membership a grant form with this one-time key gave, if any."""
    return db.session.scalar(
        scoped_select(VipMembership, institution).where(VipMembership.grant_key == key)
    )


def pending_payment(contact) -> Payment | None:
    """A VIP payment of the family's still waiting for its card, if any."""
    return db.session.scalar(
        select(Payment)
        .where(
            Payment.contact_id == contact.id,
            Payment.purpose == PURPOSE,
            Payment.status == PaymentStatus.PENDING,
        )
        .limit(1)
    )


# --- staff lists -------------------------------------------------------------------------------

SHOWS = ("active", "upcoming", "expired", "all")


def memberships(institution, now: datetime, show: str = "active") -> Select:
    """The institution's memberships for staff: running now (`active`), bought or granted
    to follow the current one (`upcoming`), over (`expired`), or `all`."""
    query = scoped_select(VipMembership, institution).options(
        selectinload(VipMembership.tier), selectinload(VipMembership.contact)
    )
    if show == "active":
        query = query.where(VipMembership.starts_at <= now, VipMembership.ends_at > now)
    elif show == "upcoming":
        query = query.where(VipMembership.starts_at > now)
    elif show == "expired":
        return query.where(VipMembership.ends_at <= now).order_by(
            VipMembership.ends_at.desc(), VipMembership.id.desc()
        )
    return query.order_by(VipMembership.ends_at, VipMembership.id)


def active_counts(institution, now: datetime) -> dict[int, int]:
    """Families holding each tier now."""
    rows = db.session.execute(
        select(VipMembership.tier_id, func.count(func.distinct(VipMembership.contact_id)))
        .where(
            VipMembership.institution_id == institution.id,
            VipMembership.starts_at <= now,
            VipMembership.ends_at > now,
        )
        .group_by(VipMembership.tier_id)
    )
    return dict(rows.all())


# --- the sweeper's queries (across institutions) -----------------------------------------------


def continued(membership: VipMembership) -> bool:
    """Whether another membership of the family runs at this one's end."""
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    VipMembership.contact_id == membership.contact_id,
                    VipMembership.id != membership.id,
                    VipMembership.starts_at <= membership.ends_at,
                    VipMembership.ends_at > membership.ends_at,
                )
            )
        )
    )


def _continued():
    """Whether another membership of the same family runs at this one's end (a renewal,
    or a longer grant): then this one's end changes nothing."""
    other = aliased(VipMembership)
    return exists().where(
        other.contact_id == VipMembership.contact_id,
        other.id != VipMembership.id,
        other.starts_at <= VipMembership.ends_at,
        other.ends_at > VipMembership.ends_at,
    )


def due_warnings(now: datetime) -> list[tuple[int, int]]:
    """(institution id, membership id) of every membership whose reminder is due and not
    sent: past its moment on its institution's clock (`warn_at`), not over, and not
    continued by another."""
    rows = db.session.execute(
        select(
            VipMembership.institution_id,
            VipMembership.id,
            VipMembership.ends_at,
            Institution.timezone,
        )
        .join(Institution, Institution.id == VipMembership.institution_id)
        .where(
            VipMembership.warned_at.is_(None),
            VipMembership.lapsed_at.is_(None),
            VipMembership.ends_at > now,
            # Every reminder moment lies in the last WARN_DAYS days; the zone decides which.
            VipMembership.ends_at <= now + timedelta(days=WARN_DAYS + 1),
            ~_continued(),
        )
    )
    return [
        (institution_id, membership_id)
        for institution_id, membership_id, ends_at, timezone in rows.all()
        if warn_at(ends_at, ZoneInfo(timezone)) <= now
    ]


def due_lapses(now: datetime) -> list[tuple[int, int]]:
    """(institution id, membership id) of every membership that has ended and whose end was
    not dealt with yet."""
    rows = db.session.execute(
        select(VipMembership.institution_id, VipMembership.id)
        .where(VipMembership.lapsed_at.is_(None), VipMembership.ends_at <= now)
        .order_by(VipMembership.ends_at)
    )
    return [tuple(row) for row in rows.all()]
