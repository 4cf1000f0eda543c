from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, select
from sqlalchemy.orm import joinedload, selectinload

from app.campaigns.models import (
    ACTIVE_FLASH_ORDER,
    ACTIVE_MEMBER,
    SEATED_MEMBER,
    CampaignStatus,
    FlashOrder,
    FlashOrderStatus,
    FlashSale,
    FlashTerms,
    GroupBuy,
    MemberStatus,
    Team,
    TeamMember,
    TeamStatus,
)
from app.contacts.models import Contact
from app.db import scoped_select
from app.extensions import db
from app.payments.models import Payment, PaymentStatus


def group_buy_by_code(institution, code: str) -> GroupBuy | None:
    return db.session.scalar(
        select(GroupBuy).where(GroupBuy.institution_id == institution.id, GroupBuy.code == code)
    )


def team_by_code(group_buy: GroupBuy, team_code: str) -> Team | None:
    return db.session.scalar(
        select(Team).where(Team.group_buy_id == group_buy.id, Team.code == team_code)
    )


def seated_members(team: Team) -> list[TeamMember]:
    """The team's members who hold a seat, in the order they came, each with the family
    whose masked name the team's page shows: one query, not one per member."""
    return list(
        db.session.scalars(
            select(TeamMember)
            .where(TeamMember.team_id == team.id, TeamMember.status.in_(SEATED_MEMBER))
            .order_by(TeamMember.id)
            .options(joinedload(TeamMember.contact))
        )
    )


def opened_team_ids() -> Select:
    """Teams that were opened: one of their members' holds succeeded at some point."""
    return (
        select(TeamMember.team_id)
        .join(Payment, Payment.id == TeamMember.payment_id)
        .where(Payment.authorised_at.is_not(None))
    )


def all_group_buys(institution) -> list[GroupBuy]:
    return list(
        db.session.scalars(
            scoped_select(GroupBuy, institution).order_by(GroupBuy.created_at.desc())
        )
    )


def teams_opened(group_buy_id: int, now: datetime) -> int:
    """Teams that count against the campaign's limit: any with a member whose hold
    succeeded, and those still being opened (a leader paying right now)."""
    return db.session.scalar(
        select(func.count())
        .select_from(Team)
        .where(
            Team.group_buy_id == group_buy_id,
            Team.id.in_(opened_team_ids())
            | ((Team.status == TeamStatus.FORMING) & (Team.expires_at > now)),
        )
    )


def active_places(group_buy: GroupBuy, contact: Contact) -> list[TeamMember]:
    """The family's places in the campaign's teams that are paying, held or paid."""
    return list(
        db.session.scalars(
            select(TeamMember)
            .join(Team, Team.id == TeamMember.team_id)
            .where(
                Team.group_buy_id == group_buy.id,
                TeamMember.contact_id == contact.id,
                TeamMember.status.in_(ACTIVE_MEMBER),
            )
        )
    )


# --- across institutions: what the sweeper looks for --------------------------------------------


def group_buys_past_end(now: datetime) -> list[GroupBuy]:
    return list(
        db.session.scalars(
            select(GroupBuy)
            .where(GroupBuy.status == CampaignStatus.PUBLISHED, GroupBuy.ends_at <= now)
            .execution_options(all_institutions=True)
        )
    )


def teams_past_deadline(now: datetime) -> list[Team]:
    """Teams still forming after their deadline (their deadline job was lost)."""
    return list(
        db.session.scalars(
            select(Team)
            .where(Team.status == TeamStatus.FORMING, Team.expires_at <= now)
            .execution_options(all_institutions=True)
        )
    )


def teams_not_settled() -> list[Team]:
    """Teams that filled but are not settled yet (their settlement job was lost, or is
    retrying a capture)."""
    return list(
        db.session.scalars(
            select(Team)
            .where(Team.status == TeamStatus.SUCCEEDED, Team.settled_at.is_(None))
            .execution_options(all_institutions=True)
        )
    )


def joinable_teams(group_buy: GroupBuy, now: datetime, limit: int = 10) -> list[Team]:
    """Teams a stranger can join now, the closest to filling first."""
    return list(
        db.session.scalars(
            select(Team)
            .where(
                Team.group_buy_id == group_buy.id,
                Team.status == TeamStatus.FORMING,
                Team.expires_at > now,
                Team.member_count > 0,
                Team.member_count < Team.team_size,
            )
            .order_by((Team.team_size - Team.member_count), Team.expires_at)
            .options(selectinload(Team.members).selectinload(TeamMember.contact))
            .limit(limit)
        )
    )


def teams_of(group_buy: GroupBuy) -> list[Team]:
    """Every team that got at least one member, newest first, with members and payments."""
    return list(
        db.session.scalars(
            select(Team)
            .where(Team.group_buy_id == group_buy.id, Team.members.any())
            .order_by(Team.opened_at.desc())
            .options(
                selectinload(Team.members).selectinload(TeamMember.contact),
                selectinload(Team.members).selectinload(TeamMember.payment),
                selectinload(Team.members).selectinload(TeamMember.student),
            )
        )
    )


@dataclass
class Figures:
    teams_opened: int = 0
    teams_succeeded: int = 0
    teams_failed: int = 0
    teams_forming: int = 0
    seats_sold: int = 0
    revenue: int = 0  # minor units captured


def figures(group_buy_ids: list[int]) -> dict[int, Figures]:
    """The staff list's figures per campaign. A team counts as opened once its first hold
    succeeded; seats sold and revenue count captured payments only."""
    result = {gid: Figures() for gid in group_buy_ids}
    if not group_buy_ids:
        return result
    for gid, status, count in db.session.execute(
        select(Team.group_buy_id, Team.status, func.count())
        .where(Team.group_buy_id.in_(group_buy_ids), Team.id.in_(opened_team_ids()))
        .group_by(Team.group_buy_id, Team.status)
    ):
        f = result[gid]
        f.teams_opened += count
        if status == TeamStatus.SUCCEEDED:
            f.teams_succeeded += count
        elif status == TeamStatus.FAILED:
            f.teams_failed += count
        else:
            f.teams_forming += count
    for gid, seats, revenue in db.session.execute(
        select(Team.group_buy_id, func.count(), func.coalesce(func.sum(Payment.amount), 0))
        .join(TeamMember, TeamMember.team_id == Team.id)
        .join(Payment, Payment.id == TeamMember.payment_id)
        .where(
            Team.group_buy_id.in_(group_buy_ids),
            TeamMember.status == MemberStatus.CAPTURED,
            Payment.status == PaymentStatus.CAPTURED,
        )
        .group_by(Team.group_buy_id)
    ):
        result[gid].seats_sold = seats
        result[gid].revenue = int(revenue)
    return result


def family_places(contact: Contact, limit: int = 10) -> list[TeamMember]:
    """A family's places in group-buy teams, newest first, with their teams and group buys
    (their page shows each team's state and countdown)."""
    return list(
        db.session.scalars(
            select(TeamMember)
            .where(
                TeamMember.institution_id == contact.institution_id,
                TeamMember.contact_id == contact.id,
                TeamMember.status != MemberStatus.PENDING,
            )
            .options(selectinload(TeamMember.team).selectinload(Team.group_buy))
            .order_by(TeamMember.id.desc())
            .limit(limit)
        )
    )


def members_by_codes(group_buy: GroupBuy, member_codes: list[str]) -> list[TeamMember]:
    """The places this browser's family took in the campaign (codes kept in the session)."""
    if not member_codes:
        return []
    return list(
        db.session.scalars(
            select(TeamMember)
            .join(Team, Team.id == TeamMember.team_id)
            .where(Team.group_buy_id == group_buy.id, TeamMember.code.in_(member_codes))
            .order_by(TeamMember.id)
        )
    )


# --- flash sales -----------------------------------------------------------------------------


def flash_sale_by_code(institution, code: str) -> FlashSale | None:
    return db.session.scalar(scoped_select(FlashSale, institution).where(FlashSale.code == code))


def all_flash_sales(institution) -> list[FlashSale]:
    return list(
        db.session.scalars(scoped_select(FlashSale, institution).order_by(FlashSale.id.desc()))
    )


def flash_counts(sale: FlashSale | FlashTerms) -> tuple[int, dict[str, int], list[tuple[str, str]]]:
    """What the sale's Redis counters are built from: the seats left, the seats each
    family's phone holds, and (attempt, order code) of the orders that hold one (pending
    and paid)."""
    row = db.session.execute(
        select(FlashSale.stock, FlashSale.sold, FlashSale.reserved).where(FlashSale.id == sale.id)
    ).one()
    orders = db.session.execute(
        select(FlashOrder.phone, FlashOrder.attempt_key, FlashOrder.code).where(
            FlashOrder.flash_sale_id == sale.id, FlashOrder.status.in_(ACTIVE_FLASH_ORDER)
        )
    ).all()
    held: dict[str, int] = {}
    for phone, _attempt, _code in orders:
        held[phone] = held.get(phone, 0) + 1
    return row.stock - row.sold - row.reserved, held, [(a, c) for _p, a, c in orders]


def flash_order_codes(sale: FlashSale, codes: list[str]) -> set[str]:
    """Those of these order codes that the sale's orders have."""
    return set(
        db.session.scalars(
            select(FlashOrder.code).where(
                FlashOrder.flash_sale_id == sale.id, FlashOrder.code.in_(codes)
            )
        )
    )


def family_flash_seats(sale: FlashSale, contact) -> int:
    return db.session.scalar(
        select(func.count()).where(
            FlashOrder.flash_sale_id == sale.id,
            FlashOrder.contact_id == contact.id,
            FlashOrder.status.in_(ACTIVE_FLASH_ORDER),
        )
    )


def flash_orders(sale: FlashSale, status: FlashOrderStatus | None = None) -> list[FlashOrder]:
    query = (
        select(FlashOrder)
        .where(FlashOrder.flash_sale_id == sale.id)
        .options(selectinload(FlashOrder.contact), selectinload(FlashOrder.student))
        .order_by(FlashOrder.id.desc())
    )
    if status is not None:
        query = query.where(FlashOrder.status == status)
    return list(db.session.scalars(query))


def flash_orders_of(sale: FlashSale, codes: list[str]) -> list[FlashOrder]:
    """This browser's orders in the sale (their codes are kept in its session)."""
    if not codes:
        return []
    return list(
        db.session.scalars(
            select(FlashOrder)
            .where(FlashOrder.flash_sale_id == sale.id, FlashOrder.code.in_(codes))
            .order_by(FlashOrder.id)
        )
    )


@dataclass(frozen=True)
class FlashFigures:
    attempts: int
    reserved: int
    paid: int
    expired: int
    refunded: int
    revenue: int


def flash_figures(sale: FlashSale, attempts: int) -> FlashFigures:
    counts = dict(
        db.session.execute(
            select(FlashOrder.status, func.count())
            .where(FlashOrder.flash_sale_id == sale.id)
            .group_by(FlashOrder.status)
        ).all()
    )
    revenue = db.session.scalar(
        select(func.coalesce(func.sum(FlashOrder.price_amount), 0)).where(
            FlashOrder.flash_sale_id == sale.id, FlashOrder.status == FlashOrderStatus.PAID
        )
    )
    return FlashFigures(
        attempts=max(attempts, sale.attempts),
        reserved=counts.get(FlashOrderStatus.PENDING, 0),
        paid=counts.get(FlashOrderStatus.PAID, 0),
        expired=counts.get(FlashOrderStatus.EXPIRED, 0),
        refunded=counts.get(FlashOrderStatus.REFUNDED, 0),
        revenue=int(revenue),
    )


def flash_orders_past_deadline(now: datetime) -> list[tuple[int, int]]:
    """(institution id, order id) of every pending order past its deadline, across
    institutions (the sweeper's, for deadline jobs Redis lost)."""
    return list(
        db.session.execute(
            select(FlashOrder.institution_id, FlashOrder.id).where(
                FlashOrder.status == FlashOrderStatus.PENDING, FlashOrder.pay_by <= now
            )
        ).all()
    )


def flash_sales_selling_since(since: datetime, now: datetime) -> list[tuple[int, int]]:
    """(institution id, sale id) of every sale open at some time between `since` and `now`,
    across institutions (the sweeper's, for orders queued in Redis whose writer was lost)."""
    return list(
        db.session.execute(
            select(FlashSale.institution_id, FlashSale.id).where(
                FlashSale.starts_at <= now, FlashSale.ends_at > since
            )
        ).all()
    )


def campaign_titles(institution_id: int, codes: list[str]) -> dict[str, str]:
    """{code: title} of the institution's group buys and flash sales among `codes` (a
    campaign touch names either)."""
    if not codes:
        return {}
    titles: dict[str, str] = {}
    for model in (GroupBuy, FlashSale):
        rows = db.session.execute(
            select(model.code, model.title).where(
                model.institution_id == institution_id, model.code.in_(codes)
            )
        )
        titles.update(rows.all())
    return titles
