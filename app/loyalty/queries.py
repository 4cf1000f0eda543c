"""Loyalty: reading the points ledger, rewards, memberships and referrals."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app.contacts.models import Contact, ContactTouch
from app.extensions import db
from app.loyalty.models import (
    PointsEntry,
    PointsRules,
    Redemption,
    RedemptionStatus,
    Referral,
    Reward,
)
from app.paging import Page, paginate


def balance(contact) -> int:
    """A family's points: the sum of its ledger, never a stored number."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(PointsEntry.amount), 0)).where(
            PointsEntry.institution_id == contact.institution_id,
            PointsEntry.contact_id == contact.id,
        )
    )
    return int(total)


def ledger(contact, limit: int = 50) -> list[PointsEntry]:
    """A family's newest entries first."""
    return list(
        db.session.scalars(
            select(PointsEntry)
            .where(
                PointsEntry.institution_id == contact.institution_id,
                PointsEntry.contact_id == contact.id,
            )
            .order_by(PointsEntry.id.desc())
            .limit(limit)
        )
    )


def entry_by_source(institution, source_key: str) -> PointsEntry | None:
    """The entry that an event (`source_key`) already added, if any."""
    return db.session.scalar(
        select(PointsEntry).where(
            PointsEntry.institution_id == institution.id, PointsEntry.source_key == source_key
        )
    )


def points_rules(institution) -> PointsRules:
    """The institution's rules, or the defaults (unsaved) when staff never set them."""
    rules = db.session.scalar(
        select(PointsRules).where(PointsRules.institution_id == institution.id)
    )
    return rules or PointsRules(
        institution_id=institution.id,
        **{column.name: column.default.arg for column in _rule_columns()},
    )


def _rule_columns():
    return [
        column
        for column in PointsRules.__table__.columns
        if column.name not in ("id", "institution_id") and column.default is not None
    ]


# --- rewards and redemptions -----------------------------------------------------------------


def all_rewards(institution) -> list[Reward]:
    """Every reward, offered ones first, cheapest first."""
    return list(
        db.session.scalars(
            select(Reward)
            .where(Reward.institution_id == institution.id)
            .order_by(Reward.is_active.desc(), Reward.points_price, Reward.id)
        )
    )


def reward_created_with(institution, key: str) -> Reward | None:
    """The reward a new-reward form with this one-time key created, if any."""
    return db.session.scalar(
        select(Reward).where(Reward.institution_id == institution.id, Reward.create_key == key)
    )


def active_rewards(institution) -> list[Reward]:
    """The rewards families may redeem (sold-out ones too: the page says so)."""
    return list(
        db.session.scalars(
            select(Reward)
            .where(Reward.institution_id == institution.id, Reward.is_active.is_(True))
            .order_by(Reward.points_price, Reward.id)
        )
    )


def requested_counts(institution) -> dict[int, int]:
    """{reward id: redemptions still to hand over}."""
    return dict(
        db.session.execute(
            select(Redemption.reward_id, func.count())
            .where(
                Redemption.institution_id == institution.id,
                Redemption.status == RedemptionStatus.REQUESTED,
            )
            .group_by(Redemption.reward_id)
        ).all()
    )


def redemptions(institution, status: RedemptionStatus | None, number: int, per_page: int) -> Page:
    """One page of the institution's redemptions (of one status, or all), oldest
    request first for those to hand over, newest first otherwise."""
    query = (
        select(Redemption)
        .where(Redemption.institution_id == institution.id)
        .options(joinedload(Redemption.reward), joinedload(Redemption.contact))
    )
    if status is not None:
        query = query.where(Redemption.status == status)
    if status == RedemptionStatus.REQUESTED:
        query = query.order_by(Redemption.id)
    else:
        query = query.order_by(Redemption.id.desc())
    return paginate(query, number, per_page)


def family_redemptions(contact, limit: int = 10) -> list[Redemption]:
    """A family's redemptions, newest first."""
    return list(
        db.session.scalars(
            select(Redemption)
            .where(
                Redemption.institution_id == contact.institution_id,
                Redemption.contact_id == contact.id,
            )
            .options(joinedload(Redemption.reward))
            .order_by(Redemption.id.desc())
            .limit(limit)
        )
    )


def has_requested(contact, reward) -> bool:
    """Whether the family already has this reward waiting to be handed over."""
    return (
        db.session.scalar(
            select(Redemption.id)
            .where(
                Redemption.institution_id == contact.institution_id,
                Redemption.contact_id == contact.id,
                Redemption.reward_id == reward.id,
                Redemption.status == RedemptionStatus.REQUESTED,
            )
            .limit(1)
        )
        is not None
    )


@dataclass(frozen=True)
class FamilyPoints:
    """What a family's own page shows of its points."""

    balance: int
    entries: list[PointsEntry]
    rewards: list[Reward]
    redemptions: list[Redemption]

    @property
    def waiting_reward_ids(self) -> set[int]:
        """The rewards the family has redeemed and not yet been handed."""
        return {r.reward_id for r in self.redemptions if r.is_requested}


def family_points(institution, contact, entries: int = 5) -> FamilyPoints:
    return FamilyPoints(
        balance=balance(contact),
        entries=ledger(contact, limit=entries),
        rewards=active_rewards(institution),
        redemptions=family_redemptions(contact),
    )


# --- referrals -------------------------------------------------------------------------------


def referrer_of(contact) -> Contact | None:
    """The family that brought `contact`: the owner of the referral code (`ref`) on the
    newest of its arrivals that carried one. None for no code, an unknown one, or the
    family's own."""
    code = db.session.scalar(
        select(ContactTouch.referral_code)
        .where(
            ContactTouch.institution_id == contact.institution_id,
            ContactTouch.contact_id == contact.id,
            ContactTouch.referral_code.is_not(None),
        )
        .order_by(ContactTouch.created_at.desc(), ContactTouch.id.desc())
        .limit(1)
    )
    if not code:
        return None
    referrer = contact_by_referral_code(contact.institution_id, code)
    return None if referrer is None or referrer.id == contact.id else referrer


def contact_by_referral_code(institution_id: int, code: str) -> Contact | None:
    return db.session.scalar(
        select(Contact).where(
            Contact.institution_id == institution_id, Contact.referral_code == code
        )
    )


def referral_sources(institution) -> list[str]:
    """Where referred families came through ("campaign:<code>", "course:<code>", ...)."""
    return list(
        db.session.scalars(
            select(Referral.source)
            .where(Referral.institution_id == institution.id, Referral.source.is_not(None))
            .distinct()
            .order_by(Referral.source)
        )
    )


@dataclass(frozen=True)
class TopReferrer:
    contact: Contact
    families: int  # distinct families brought
    credits: int  # events credited
    points: int


def top_referrers(institution, source: str | None = None, limit: int = 20) -> list[TopReferrer]:
    query = (
        select(
            Referral.referrer_id,
            func.count(func.distinct(Referral.referred_id)),
            func.count(),
            func.coalesce(func.sum(Referral.points), 0),
        )
        .where(Referral.institution_id == institution.id)
        .group_by(Referral.referrer_id)
        .order_by(func.count(func.distinct(Referral.referred_id)).desc(), func.count().desc())
        .limit(limit)
    )
    if source:
        query = query.where(Referral.source == source)
    rows = db.session.execute(query).all()
    contacts = {
        c.id: c
        for c in db.session.scalars(select(Contact).where(Contact.id.in_([r[0] for r in rows])))
    }
    return [TopReferrer(contacts[r[0]], r[1], r[2], int(r[3])) for r in rows]


@dataclass
class ChainLink:
    contact: Contact
    events: list[Referral] = field(default_factory=list)
    brought: list[ChainLink] = field(default_factory=list)


def referral_chains(institution, source: str | None = None, depth: int = 6) -> list[ChainLink]:
    """Who brought whom, as trees from the families nobody brought (within `source` if
    given); each family appears once, under the first family that brought it."""
    query = (
        select(Referral)
        .where(Referral.institution_id == institution.id)
        .options(joinedload(Referral.referrer), joinedload(Referral.referred))
        .order_by(Referral.id)
    )
    if source:
        query = query.where(Referral.source == source)
    referrals = list(db.session.scalars(query))
    links: dict[int, ChainLink] = {}
    parent: dict[int, int] = {}
    for referral in referrals:
        referrer = links.setdefault(referral.referrer_id, ChainLink(referral.referrer))
        referred = links.setdefault(referral.referred_id, ChainLink(referral.referred))
        referred.events.append(referral)
        if referral.referred_id not in parent and not _is_above(
            parent, referral.referred_id, referral.referrer_id
        ):
            parent[referral.referred_id] = referral.referrer_id
            referrer.brought.append(referred)
    roots = [link for contact_id, link in links.items() if contact_id not in parent]
    return [_cut(root, depth) for root in roots]


def _is_above(parent: dict[int, int], ancestor: int, node: int) -> bool:
    """Whether `ancestor` is already above `node` (a loop: A brought B, B "brought" A)."""
    while node in parent:
        node = parent[node]
        if node == ancestor:
            return True
    return node == ancestor


def _cut(link: ChainLink, depth: int) -> ChainLink:
    if depth <= 1:
        link.brought = []
    for child in link.brought:
        _cut(child, depth - 1)
    return link
