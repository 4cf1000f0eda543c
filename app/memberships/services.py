"""VIP memberships: the tiers staff define, a family's membership (bought on its page or
granted by staff), and its end: a reminder before, and the VIP clubs left on the day.

A paid membership is written by the payment's transition handler when the money is taken,
once per payment (the row is unique on its payment): the checkout's own answer, a webhook
and reconciliation may each report the same success. Every membership is written under a
lock on the family's row, so two at once (a grant while a payment lands) still follow one
another without a gap or an overlap: each starts where the family's VIP time ends
(`queries.next_term`).

The end is driven by the database, not by timers: the sweeper (tasks.sweep_memberships)
finds memberships whose reminder is due (`warned_at` empty) or whose end has come
(`lapsed_at` empty), and each job does its part once, under the membership's row lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from app.contacts import services as contacts
from app.contacts.models import Contact
from app.db import assign, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.groups import queries as group_queries
from app.groups import services as groups
from app.loyalty import services as loyalty
from app.loyalty.models import ReferralEvent
from app.memberships import queries
from app.memberships.models import (
    MAX_DAYS,
    MembershipSource,
    VipMembership,
    VipPurchase,
    VipTier,
)
from app.memberships.queries import PURPOSE
from app.notifications import services as notifications
from app.payments import services as payments
from app.payments.models import Payment, PaymentStatus
from app.tenancy import institution_by_id

log = logging.getLogger(__name__)
TIER_CHANGED = _l("This membership changed: please look at it again.")


# --- tiers -------------------------------------------------------------------------------------


def save_tier(institution, tier: VipTier | None, key: str | None = None, **values) -> VipTier:
    """Create a tier (`tier` None) or change one. A change applies to memberships bought or
    granted from then on; those already written, and purchases already started, keep
    their days. `key`, the new-tier form's one-time key, makes a second press of Save
    return the tier the first one made."""
    if not (values.get("name") or "").strip():
        raise ServiceError(_l("Give the tier a name."), field="name", code="name")
    if values.get("price_amount", 0) < 0:
        raise ServiceError(_l("The price cannot be negative."), field="price", code="price")
    if not 0 < values.get("duration_days", 0) <= MAX_DAYS:
        raise ServiceError(
            _l("Between 1 and %(n)s days.", n=MAX_DAYS), field="duration_days", code="days"
        )
    if tier is None:
        made = key is not None and queries.tier_created_with(institution, key)
        if made:
            return made
        tier = db.insert_unless_exists(
            VipTier,
            {"institution_id": institution.id, "create_key": key, **values},
            conflict=["institution_id", "create_key"],
        )
        # None: the same form, sent twice at the same moment, made it a moment ago.
        return tier if tier is not None else queries.tier_created_with(institution, key)
    assign(tier, values)
    db.session.flush()
    return tier


# --- memberships -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FamilyVip:
    """What the family's page shows of VIP: its status, the VIP clubs it can go to, the
    paid tiers it can buy or renew with, and whether payment online is open."""

    status: queries.VipStatus
    clubs: list[group_queries.GroupOffer]  # the VIP clubs to go to, for a VIP
    tiers: list[VipTier]
    can_buy: bool


def family_vip(institution, contact: Contact, now: datetime) -> FamilyVip:
    status = queries.vip_status(institution, contact, now)
    return FamilyVip(
        status=status,
        clubs=group_queries.vip_clubs(institution, contact, now) if status.current else [],
        tiers=[tier for tier in queries.active_tiers(institution) if not tier.is_free],
        can_buy=payments.accepts_payments(institution.id),
    )


def _lock_family(contact_id: int) -> Contact:
    """The family's row, locked to the commit: its memberships are written one at a time."""
    return db.session.scalar(
        select(Contact)
        .where(Contact.id == contact_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _add_membership(
    institution, contact: Contact, tier: VipTier, days: int, once_per: str, **values
) -> VipMembership | None:
    """A membership of `days` days in `tier`, from the end of the family's VIP time (or
    now); none (None) if the payment or the grant form it comes from (`once_per`:
    "payment_id" or "grant_key") has one already. The caller holds the family's row
    lock."""
    starts_at, ends_at = queries.next_term(institution, contact, days, utcnow())
    membership = db.insert_unless_exists(
        VipMembership,
        {
            "institution_id": institution.id,
            "tier_id": tier.id,
            "contact_id": contact.id,
            "starts_at": starts_at,
            "ends_at": ends_at,
            **values,
        },
        conflict=["institution_id", once_per],
    )
    if membership is None:
        return None
    log.info(
        "vip membership %s: contact %s, tier %s, %s to %s",
        membership.id,
        contact.id,
        tier.id,
        starts_at,
        ends_at,
    )
    _tell_started(institution, contact, tier, membership)
    return membership


def grant_membership(
    institution,
    contact: Contact,
    tier: VipTier,
    actor,
    days: int | None = None,
    key: str | None = None,
) -> VipMembership:
    """Staff give the family a membership of `tier` (free or paid, for the tier's days or
    `days`): at once, or after the family's current VIP time (a renewal). The family is
    told. `key`, the grant form's one-time key, makes the same form sent twice grant once:
    the second press gets the membership the first one gave."""
    if tier.institution_id != institution.id or not tier.is_active:
        raise ServiceError(_l("Choose one of the tiers."), field="tier_id", code="tier")
    days = tier.duration_days if days is None else days
    if not 0 < days <= MAX_DAYS:
        raise ServiceError(_l("Between 1 and %(n)s days.", n=MAX_DAYS), field="days", code="days")
    contact = _lock_family(contact.id)
    # Under the family's lock: a second press waits for the first one's commit, then
    # finds its membership here.
    given = key is not None and queries.granted_with(institution, key)
    if given:
        return given
    membership = _add_membership(
        institution,
        contact,
        tier,
        days,
        once_per="grant_key",
        source=MembershipSource.GRANTED,
        granted_by_id=actor.id if actor is not None else None,
        grant_key=key,
    )
    return membership if membership is not None else queries.granted_with(institution, key)


def start_purchase(
    institution, contact: Contact, tier: VipTier, *, price_seen: int | None, days_seen: int | None
) -> Payment:
    """The pending payment for a paid tier, bought by the family from its page (the caller
    hands it to payments.checkout), with what it buys (a VipPurchase: the days and the
    price). The family pays for what its page showed (`price_seen`, `days_seen`): a tier
    changed since is refused (TIER_CHANGED), and the page shows it again as it is now.
    The membership is written when the payment succeeds (`_on_payment`), for the days
    bought whatever the tier says by then: it starts then, or when the family's VIP time
    ends. Free tiers are only granted by staff; one VIP payment at a time per family."""
    if tier.institution_id != institution.id or not tier.is_active:
        raise ServiceError(_l("This membership is no longer offered."), code="tier")
    if tier.is_free:
        raise ServiceError(
            _l("This membership is given by our staff. Please ask us."), code="free_tier"
        )
    if (price_seen, days_seen) != (tier.price_amount, tier.duration_days):
        raise ServiceError(TIER_CHANGED, code="tier_changed")
    contact = _lock_family(contact.id)
    if queries.pending_payment(contact) is not None:
        raise ServiceError(
            _l("A VIP payment is already in progress. Finish it or try again later."),
            code="payment_in_progress",
        )
    payment = payments.start_payment(
        institution,
        purpose=PURPOSE,
        reference=tier.id,
        amount=tier.price_amount,
        contact_id=contact.id,
        manual_capture=False,
    )
    db.session.add(
        VipPurchase(
            institution_id=institution.id,
            payment_id=payment.id,
            tier_id=tier.id,
            duration_days=tier.duration_days,
            price_amount=tier.price_amount,
        )
    )
    db.session.flush()
    return payment


@payments.on_transition(PURPOSE)
def _on_payment(payment: Payment, previous: PaymentStatus, cause: str) -> None:
    """The money is taken: the family's membership is written, once per payment, for the
    days its purchase recorded when the family pressed Pay (whatever the tier's days,
    price or status are by now: this is what they paid for). A payment that fails or is
    abandoned held nothing, so there is nothing to free. (Cohort never refunds a VIP
    payment itself; one refunded at Stripe by hand leaves the membership as it is.)"""
    if payment.status != PaymentStatus.CAPTURED or payment.contact_id is None:
        return
    institution = institution_by_id(payment.institution_id)
    tier = db.session.get(VipTier, payment.reference)
    contact = _lock_family(payment.contact_id)
    if tier is None or contact is None or tier.institution_id != institution.id:
        log.error(
            "vip payment %s: no tier %s or family to give it to", payment.id, payment.reference
        )
        return
    purchase = queries.purchase_of(payment)
    # A payment started before purchases were recorded has none: the tier's days then.
    days = purchase.duration_days if purchase is not None else tier.duration_days
    _add_membership(
        institution,
        contact,
        tier,
        days,
        once_per="payment_id",
        source=MembershipSource.PAID,
        payment_id=payment.id,
    )
    loyalty.referral_after_commit(institution, contact, ReferralEvent.PAYMENT, "vip")


def _tell_started(institution, contact: Contact, tier: VipTier, membership: VipMembership):
    notifications.notify_contact(
        institution,
        contact,
        "vip_started",
        {"tier_name": tier.name, "last_day": membership.last_day(institution.zone).isoformat()},
        dedupe_key=f"vip-started:{membership.id}",
    )


# --- the end -----------------------------------------------------------------------------------


def _locked(membership_id: int) -> VipMembership | None:
    return db.session.scalar(
        select(VipMembership)
        .where(VipMembership.id == membership_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def warn_membership(institution, membership: VipMembership) -> bool:
    """Tell the family, once, that its membership ends in WARN_DAYS days, with a link to
    renew on its page: at the membership's moment (`warn_at`, the institution's morning),
    unless it is over or another membership continues it (a renewal bought already).
    Returns whether the family was told."""
    now = utcnow()
    membership = _locked(membership.id)
    if membership is None or membership.warned_at is not None or membership.lapsed_at:
        return False
    if not membership.warn_at(institution.zone) <= now < membership.ends_at:
        return False
    if queries.continued(membership):
        return False
    contact = membership.contact
    link = contacts.parent_page_url(institution, contact)
    notifications.notify_contact(
        institution,
        contact,
        "vip_expiring",
        {
            "tier_name": membership.tier.name,
            "last_day": membership.last_day(institution.zone).isoformat(),
            "renew_link": f"{link}#vip",
        },
        dedupe_key=f"vip-expiring:{membership.id}",
    )
    membership.warned_at = now
    db.session.flush()
    return True


def lapse_membership(institution, membership: VipMembership) -> int:
    """Deal with the end of a membership, once (`lapsed_at` records it, under the row's
    lock): the family leaves every VIP club of the institution, each removal in the
    group's moderation log with the reason, unless another membership keeps it a VIP (a
    renewal, a grant). Returns the groups it left."""
    now = utcnow()
    membership = _locked(membership.id)
    if membership is None or membership.lapsed_at is not None or membership.ends_at > now:
        return 0
    membership.lapsed_at = now
    db.session.flush()
    # Two memberships of the family ending together: the second waits here, then finds
    # the family out of the clubs already.
    contact = _lock_family(membership.contact_id)
    if queries.is_vip(contact, now):
        return 0
    left = groups.remove_from_vip_groups(institution, contact)
    log.info(
        "vip membership %s ended: contact %s left %s groups",
        membership.id,
        membership.contact_id,
        left,
    )
    return left
