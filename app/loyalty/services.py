"""Loyalty: crediting and spending points, rewards, and referrals.

Services change state and flush; the request or job commits (see app/db.py)."""

from __future__ import annotations

import logging
import uuid

from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from app.contacts.models import Contact
from app.db import assign, created_in_this_transaction, utcnow
from app.errors import ServiceError
from app.extensions import db
from app.jobs import enqueue_after_commit
from app.loyalty import queries
from app.loyalty.models import (
    REFERRAL_EVENT_LABELS,
    PointsEntry,
    PointsReason,
    PointsRules,
    Redemption,
    RedemptionStatus,
    Referral,
    ReferralEvent,
    Reward,
)
from app.notifications import services as notifications
from app.text import masked_name

log = logging.getLogger(__name__)
SOLD_OUT = _l("Sorry, this reward is sold out.")
PRICE_CHANGED = _l("The price of this reward changed: please look again.")


def add_points(
    institution,
    contact,
    amount: int,
    reason: PointsReason,
    source_key: str,
    *,
    note: str | None = None,
    user=None,
) -> PointsEntry | None:
    """Add one entry to a family's ledger, once per `source_key` (the event that earned
    or spent it, such as `checkin:<id>`): a second call with the same key, from a retried
    job or a parallel request, adds nothing and returns None."""
    if amount == 0:
        return None
    return db.insert_unless_exists(
        PointsEntry,
        {
            "institution_id": institution.id,
            "contact_id": contact.id,
            "amount": amount,
            "reason": reason.value,
            "source_key": source_key,
            "note": note,
            "user_id": getattr(user, "id", None),
            "created_at": utcnow(),
        },
        conflict=["institution_id", "source_key"],
    )


def grant_points(
    institution, contact, amount: int, note: str, actor, key: str | None = None
) -> PointsEntry | None:
    """Staff give a family points (`amount` > 0) or take some away (< 0), with the reason
    the family sees. Taking is refused beyond the balance: a balance never goes below
    zero, so the family's row is locked first, as a redemption locks it. `key`, the form's
    own, makes a second press of the same button add nothing (None)."""
    if amount == 0:
        raise ServiceError(_l("Give or take at least one point."), "amount", code="zero")
    source_key = f"manual:{key or uuid.uuid4().hex}"
    _lock_family(contact)
    if queries.entry_by_source(institution, source_key) is not None:
        return None
    held = queries.balance(contact)
    if held + amount < 0:
        raise ServiceError(
            _l("This family has only %(n)s points to take.", n=held),
            "amount",
            code="not_enough_points",
        )
    entry = add_points(
        institution, contact, amount, PointsReason.MANUAL, source_key, note=note, user=actor
    )
    log.info("points: %+d for contact %s by user %s", amount, contact.id, actor.id)
    return entry


def _lock_family(contact) -> None:
    """Lock the family's row until the commit, so that the balance one transaction reads
    holds until it has spent it: a second spender waits, then reads the new balance. FOR
    NO KEY UPDATE, so that rows merely referring to the family (a ledger entry written by
    a check-in meanwhile) are not held up."""
    db.session.scalar(
        select(Contact.id)
        .where(Contact.institution_id == contact.institution_id, Contact.id == contact.id)
        .with_for_update(key_share=True)
    )


def save_points_rules(institution, **values) -> PointsRules:
    """Set the institution's rules (the row is made on the first save)."""
    rules = _rules_row(institution)
    if rules is None:
        rules = db.insert_unless_exists(
            PointsRules, {"institution_id": institution.id, **values}, conflict=["institution_id"]
        )
        if rules is not None:
            return rules
        rules = _rules_row(institution)  # saved a moment ago by a parallel request
    assign(rules, values)
    db.session.flush()
    return rules


def _rules_row(institution) -> PointsRules | None:
    return db.session.scalar(
        select(PointsRules).where(PointsRules.institution_id == institution.id)
    )


# --- rewards and redemptions -----------------------------------------------------------------


def create_reward(institution, key: str | None = None, **values) -> Reward:
    """A new reward staff offer for points. `key`, the new-reward form's one-time key,
    makes a second press of Save return the reward the first one made."""
    made = key is not None and queries.reward_created_with(institution, key)
    if made:
        return made
    reward = db.insert_unless_exists(
        Reward,
        {"institution_id": institution.id, "create_key": key, **values},
        conflict=["institution_id", "create_key"],
    )
    # None: the same form, sent twice at the same moment, made it a moment ago.
    return reward if reward is not None else queries.reward_created_with(institution, key)


def update_reward(reward: Reward, stock_seen: int | None = None, **values) -> None:
    """Change a reward. A new `stock` is a change to the stock the form showed
    (`stock_seen`, needed with it), applied to the stock as it is now: families may have
    redeemed units while staff had the form open, and a form still showing them must not
    put them back on sale. Staff who take more units away than are left (the last ones
    went meanwhile) are refused with the figure as it is now. The stock is changed last,
    by one conditional UPDATE (the contended row); a redemption in the same instant waits
    for its lock and then takes its unit from the new figure."""
    stock = values.pop("stock", None)
    assign(reward, values)
    db.session.flush()
    if stock is None or stock == stock_seen:
        return
    moved = 0
    if stock_seen is not None:  # None: a form that did not say what it showed
        change = stock - stock_seen
        table = Reward.__table__
        moved = db.session.execute(
            update(table)
            .where(
                table.c.institution_id == reward.institution_id,
                table.c.id == reward.id,
                table.c.stock + change >= 0,
            )
            .values(stock=table.c.stock + change)
        ).rowcount
    db.session.expire(reward, ["stock"])
    if not moved:
        raise ServiceError(
            _l(
                "Families redeemed some meanwhile: %(n)s left now. Check the number and save "
                "again.",
                n=reward.stock,
            ),
            "stock",
            code="stock_moved",
        )


def redeem_reward(institution, contact, reward: Reward, *, price_seen: int | None) -> Redemption:
    """The family spends the reward's price on one unit of it, all or nothing, at the
    price its page showed (`price_seen`; a price changed since, or none, is refused with
    PRICE_CHANGED): the family's row is locked first (two redemptions by one family
    cannot both spend the same points), then the points are taken (a negative ledger
    entry), and one unit of stock is claimed last by a conditional UPDATE, the contended
    row held for milliseconds. A refusal (ServiceError) may come after rows were written:
    the caller rolls back, and nothing is left of it. One unit at a time: a family with
    this reward still to hand over is refused another, so a double tap spends nothing
    twice."""
    _lock_family(contact)
    if not reward.is_active:
        raise ServiceError(_l("This reward is no longer offered."), code="reward_inactive")
    if price_seen != reward.points_price:
        raise ServiceError(PRICE_CHANGED, code="price_changed")
    if reward.stock <= 0:
        raise ServiceError(SOLD_OUT, code="sold_out")
    if queries.has_requested(contact, reward):
        raise ServiceError(
            _l("You already have this reward waiting to be handed over."),
            code="already_requested",
        )
    held = queries.balance(contact)
    if held < reward.points_price:
        raise ServiceError(
            _l(
                "Not enough points: this reward needs %(price)s and you have %(held)s.",
                price=reward.points_price,
                held=held,
            ),
            code="not_enough_points",
        )
    redemption = Redemption(
        institution_id=institution.id,
        reward_id=reward.id,
        contact_id=contact.id,
        points=reward.points_price,
    )
    db.session.add(redemption)
    db.session.flush()
    add_points(
        institution,
        contact,
        -reward.points_price,
        PointsReason.REDEMPTION,
        f"redemption:{redemption.id}",
        note=reward.title[:200],
    )
    _move_stock(reward, -1)  # last: see the docstring
    log.info("reward %s redeemed by contact %s (%s)", reward.id, contact.id, redemption.id)
    return redemption


def _move_stock(reward: Reward, by: int) -> None:
    """Take a unit of stock (by=-1; refused at zero) or give one back (by=1), in one
    conditional statement: its row lock queues parallel claims, and a claim that finds
    the stock gone after waiting changes nothing."""
    table = Reward.__table__
    statement = update(table).where(
        table.c.institution_id == reward.institution_id, table.c.id == reward.id
    )
    if by < 0:
        statement = statement.where(table.c.stock >= -by)
    moved = db.session.execute(statement.values(stock=table.c.stock + by)).rowcount
    db.session.expire(reward, ["stock"])
    if not moved:
        raise ServiceError(SOLD_OUT, code="sold_out")


def fulfil_redemption(redemption: Redemption, actor) -> None:
    """Staff handed the reward over to the family."""
    _lock_requested(redemption)
    redemption.status = RedemptionStatus.FULFILLED
    redemption.fulfilled_at = utcnow()
    redemption.fulfilled_by_id = actor.id
    db.session.flush()
    log.info("redemption %s handed over by user %s", redemption.id, actor.id)


def cancel_redemption(institution, redemption: Redemption, actor) -> None:
    """Staff cancel a redemption not yet handed over: the family gets its points back (a
    refund entry, never an edit of the spending one) and the reward its unit."""
    _lock_requested(redemption)
    redemption.status = RedemptionStatus.CANCELLED
    db.session.flush()
    add_points(
        institution,
        redemption.contact,
        redemption.points,
        PointsReason.REFUND,
        f"refund:{redemption.id}",
        note=redemption.reward.title[:200],
        user=actor,
    )
    _move_stock(redemption.reward, 1)
    log.info("redemption %s cancelled by user %s", redemption.id, actor.id)


def _lock_requested(redemption: Redemption) -> None:
    """Lock the redemption and check that it is still to hand over: of two staff pressing
    at once, the second finds it handed over or cancelled."""
    db.session.refresh(redemption, with_for_update=True)
    if not redemption.is_requested:
        raise ServiceError(
            _l("This reward was already handed over or cancelled."), code="not_requested"
        )


# --- referrals -------------------------------------------------------------------------------


def credit_referral(institution, contact: Contact, event: ReferralEvent, source: str | None):
    """Credit the family that brought `contact` (`queries.referrer_of`) for one event: a
    trial registration, a payment, a place in a group-buy team. Once per referred family
    and event, whoever's code it came with (the referrals' unique constraint), never a
    family for itself; the referrer gets the institution's points for a referral and a
    message. Returns the referral, or None when there is nothing (more) to credit."""
    referrer = queries.referrer_of(contact)
    if referrer is None:
        return None
    rules = queries.points_rules(institution)
    referral = db.insert_unless_exists(
        Referral,
        {
            "institution_id": institution.id,
            "referrer_id": referrer.id,
            "referred_id": contact.id,
            "event": event.value,
            "source": (source or "")[:64] or None,
            "points": rules.per_referral,
            "created_at": utcnow(),
        },
        conflict=["institution_id", "referred_id", "event"],
    )
    if referral is None:
        return None
    add_points(
        institution,
        referrer,
        rules.per_referral,
        PointsReason.REFERRAL,
        f"referral:{referral.id}",
        note=f"{masked_name(contact.parent_name)} · {REFERRAL_EVENT_LABELS[event]}",
    )
    with force_locale(referrer.locale or institution.locale):  # the referrer's language
        what = str(REFERRAL_EVENT_LABELS[event])
    notifications.notify_contact(
        institution,
        referrer,
        "referral_credited",
        {
            "friend_name": masked_name(contact.parent_name),
            "event": what,
            "points": rules.per_referral,
        },
        dedupe_key=f"referral:{referral.id}",
    )
    log.info("referral %s: %s brought %s (%s)", referral.id, referrer.id, contact.id, event)
    return referral


def referral_after_commit(institution, contact: Contact, event: ReferralEvent, source: str):
    """Credit the referral in a job after this transaction commits: the events it follows
    (a seat, a team place) end on a contended row, which is not held for this. A family
    that arrived in this transaction without a referral code has nobody to credit (its
    touches are all in this session): no job, which is most of a rush."""
    if created_in_this_transaction(contact) and not any(
        touch is not None and touch.referral_code
        for touch in (contact.first_touch, contact.latest_touch)
    ):
        return
    enqueue_after_commit(
        "loyalty.credit_referral",
        institution.id,
        contact.id,
        event.value,
        source,
        job_id=f"referral-{institution.id}-{contact.id}-{event.value}",
    )
