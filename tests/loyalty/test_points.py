"""The points ledger: a balance that is always the sum of its entries, after any mix of
credits, grants, redemptions and cancellations; entries PostgreSQL refuses to change."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DBAPIError

from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, Touch, find_or_create_contact
from app.errors import ServiceError
from app.extensions import db
from app.loyalty import queries, services
from app.loyalty.models import (
    PointsEntry,
    PointsReason,
    PointsRules,
    Redemption,
    RedemptionStatus,
    Reward,
    RewardKind,
)
from tests.factories import make_member
from tests.helpers import ON_POSTGRESQL


def make_family(institution, n: int = 0):
    contact, _ = find_or_create_contact(
        institution,
        phone=f"1390015{n:04d}",
        details=ContactDetails(parent_name=f"Parent {n}"),
        touch=Touch(SourceKind.STAFF),
    )
    return contact


def make_reward(institution, price: int = 50, stock: int = 3, **values) -> Reward:
    return services.create_reward(
        institution,
        **{
            "title": f"Reward for {price}",
            "kind": RewardKind.MATERIALS,
            "description": None,
            "points_price": price,
            "stock": stock,
            "is_active": True,
            **values,
        },
    )


def ledger_sum(contact) -> int:
    return sum(entry.amount for entry in queries.ledger(contact, limit=100_000))


def refusal(call) -> str:
    """Run a refused service call as a view does (roll back), and give its code."""
    with pytest.raises(ServiceError) as raised:
        call()
    db.session.rollback()
    return raised.value.code


@pytest.fixture
def staff(institution):
    return make_member(institution)


def test_a_redemption_takes_the_points_and_one_unit_and_cancelling_gives_both_back(tenant, staff):
    family = make_family(tenant)
    services.add_points(tenant, family, 120, PointsReason.CHECKIN, "checkin:1")
    reward = make_reward(tenant, price=100, stock=2)
    db.session.commit()

    redemption = services.redeem_reward(tenant, family, reward, price_seen=reward.points_price)
    db.session.commit()

    assert queries.balance(family) == 20
    assert reward.stock == 1 and redemption.status == RedemptionStatus.REQUESTED
    (spent, _earned) = queries.ledger(family)
    assert spent.amount == -100 and spent.reason == PointsReason.REDEMPTION
    assert spent.source_key == f"redemption:{redemption.id}"

    services.cancel_redemption(tenant, redemption, staff)
    db.session.commit()

    assert queries.balance(family) == 120 and reward.stock == 2
    assert redemption.status == RedemptionStatus.CANCELLED
    assert queries.ledger(family)[0].reason == PointsReason.REFUND
    assert refusal(lambda: services.fulfil_redemption(redemption, staff)) == "not_requested"


def test_a_refused_redemption_changes_nothing(tenant):
    family = make_family(tenant)
    services.add_points(tenant, family, 40, PointsReason.CHECKIN, "checkin:1")
    cheap, dear = make_reward(tenant, price=30, stock=0), make_reward(tenant, price=50)
    hidden = make_reward(tenant, price=10, is_active=False)
    db.session.commit()

    assert (
        refusal(lambda: services.redeem_reward(tenant, family, dear, price_seen=dear.points_price))
        == "not_enough_points"
    )
    assert (
        refusal(
            lambda: services.redeem_reward(tenant, family, cheap, price_seen=cheap.points_price)
        )
        == "sold_out"
    )
    assert (
        refusal(
            lambda: services.redeem_reward(tenant, family, hidden, price_seen=hidden.points_price)
        )
        == "reward_inactive"
    )

    assert queries.balance(family) == 40
    assert db.session.scalars(select(Redemption)).all() == []
    assert [r.stock for r in (cheap, dear, hidden)] == [0, 3, 3]


def test_the_stock_claim_refuses_and_undoes_the_spending_when_the_last_unit_went_first(tenant):
    """What a family that loses the race for the last unit meets: the reward it loaded
    still says one left, the conditional UPDATE finds none, and the points it had
    already spent in the transaction are rolled back with it."""
    family = make_family(tenant)
    services.add_points(tenant, family, 100, PointsReason.CHECKIN, "checkin:1")
    reward = make_reward(tenant, price=60, stock=1)
    db.session.commit()
    assert reward.stock == 1  # as the family's request loaded it
    db.session.execute(text("UPDATE rewards SET stock = 0 WHERE id = :id"), {"id": reward.id})

    assert (
        refusal(
            lambda: services.redeem_reward(tenant, family, reward, price_seen=reward.points_price)
        )
        == "sold_out"
    )

    assert queries.balance(family) == 100
    assert db.session.scalars(select(Redemption)).all() == []


def test_staff_may_take_points_only_down_to_zero_and_a_form_sent_twice_counts_once(tenant, staff):
    family = make_family(tenant)
    services.grant_points(tenant, family, 30, "Helped at the open day", staff, key="k" * 16)
    services.grant_points(tenant, family, 30, "Helped at the open day", staff, key="k" * 16)
    db.session.commit()
    assert queries.balance(family) == 30

    assert refusal(lambda: services.grant_points(tenant, family, -31, "Oops", staff)) == (
        "not_enough_points"
    )
    assert refusal(lambda: services.grant_points(tenant, family, 0, "Nothing", staff)) == "zero"
    services.grant_points(tenant, family, -30, "Given by mistake", staff)
    db.session.commit()

    assert queries.balance(family) == 0
    (taken, given) = queries.ledger(family)
    assert (taken.amount, taken.note, taken.user_id) == (-30, "Given by mistake", staff.id)
    assert given.reason == PointsReason.MANUAL


def test_points_rules_start_at_the_defaults_and_are_saved_once_per_institution(tenant):
    assert queries.points_rules(tenant).per_checkin == 10
    values = dict(per_checkin=5, streak_7=20, streak_21=60, streak_30=100, per_referral=50)
    services.save_points_rules(tenant, **values)
    services.save_points_rules(tenant, **{**values, "per_checkin": 7})
    db.session.commit()

    (rules,) = db.session.scalars(select(PointsRules)).all()
    assert rules.per_checkin == 7 and rules.streak_bonus(21) == 60


def test_the_balance_is_the_ledgers_sum_after_a_thousand_random_operations(tenant, staff):
    """Credits (some repeated, as a retried job would), grants and takings, redemptions,
    cancellations, hand-overs and staff changing rewards, each committed or refused as a
    request would be. A model kept by the test predicts every outcome; after each step
    the balance matches it and is never negative."""
    rng = random.Random(20261201)
    families = [make_family(tenant, n) for n in range(4)]
    rewards = [make_reward(tenant, price, stock) for price, stock in ((30, 8), (80, 4), (200, 1))]
    db.session.commit()
    balances = {family.id: 0 for family in families}
    stock = {reward.id: reward.stock for reward in rewards}
    active = {reward.id: True for reward in rewards}
    waiting: dict[int, tuple[int, int, int]] = {}  # redemption id: family, reward, points
    credited: list[str] = []
    counts: dict[str, int] = {}
    operations = ["credit", "grant", "take", "redeem", "cancel", "fulfil", "restock", "toggle"]

    for step in range(1000):
        operation = rng.choices(operations, weights=[30, 10, 10, 30, 6, 4, 8, 2])[0]
        family = rng.choice(families)
        reward = rng.choice(rewards)
        expected = None  # the refusal's code, or None for success
        try:
            if operation == "credit":
                repeat = credited and rng.random() < 0.2
                key = rng.choice(credited) if repeat else f"checkin:{step}"
                entry = services.add_points(
                    tenant, family, rng.randint(1, 40), PointsReason.CHECKIN, key
                )
                assert (entry is None) == bool(repeat)
                if entry is not None:
                    credited.append(key)
                    balances[family.id] += entry.amount
            elif operation in ("grant", "take"):
                amount = rng.randint(1, 60) * (1 if operation == "grant" else -1)
                if balances[family.id] + amount < 0:
                    expected = "not_enough_points"
                services.grant_points(tenant, family, amount, f"step {step}", staff)
                balances[family.id] += amount
            elif operation == "redeem":
                mine = [w for w in waiting.values() if w[:2] == (family.id, reward.id)]
                if not active[reward.id]:
                    expected = "reward_inactive"
                elif stock[reward.id] == 0:
                    expected = "sold_out"
                elif mine:
                    expected = "already_requested"
                elif balances[family.id] < reward.points_price:
                    expected = "not_enough_points"
                redemption = services.redeem_reward(
                    tenant, family, reward, price_seen=reward.points_price
                )
                waiting[redemption.id] = (family.id, reward.id, reward.points_price)
                balances[family.id] -= reward.points_price
                stock[reward.id] -= 1
            elif operation in ("cancel", "fulfil"):
                if not waiting:
                    continue
                redemption_id = rng.choice(sorted(waiting))
                family_id, reward_id, points = waiting.pop(redemption_id)
                redemption = db.session.get(Redemption, redemption_id)
                if operation == "cancel":
                    services.cancel_redemption(tenant, redemption, staff)
                    balances[family_id] += points
                    stock[reward_id] += 1
                else:
                    services.fulfil_redemption(redemption, staff)
            elif operation == "restock":
                seen, stock[reward.id] = stock[reward.id], rng.randint(0, 6)
                services.update_reward(reward, stock=stock[reward.id], stock_seen=seen)
            elif operation == "toggle":
                active[reward.id] = rng.random() < 0.7
                services.update_reward(reward, is_active=active[reward.id])
            assert expected is None, (step, operation, expected)
            db.session.commit()
            counts[operation] = counts.get(operation, 0) + 1
        except ServiceError as error:
            db.session.rollback()
            assert error.code == expected, (step, operation, error.code, expected)
            counts[f"refused {error.code}"] = counts.get(f"refused {error.code}", 0) + 1
        assert queries.balance(family) == balances[family.id] >= 0, (step, operation)

    for family in families:
        assert queries.balance(family) == ledger_sum(family) == balances[family.id] >= 0
    for reward in rewards:
        db.session.refresh(reward)
        assert reward.stock == stock[reward.id] >= 0
    requested = db.session.scalars(
        select(Redemption.id).where(Redemption.status == RedemptionStatus.REQUESTED)
    ).all()
    assert sorted(requested) == sorted(waiting)
    # Every kind of step happened, and so did every kind of refusal.
    assert {"credit", "grant", "take", "redeem", "cancel", "fulfil"} <= set(counts)
    for code in ("not_enough_points", "sold_out", "already_requested", "reward_inactive"):
        assert counts.get(f"refused {code}", 0) > 0, (code, counts)
    assert counts["redeem"] > 50 and counts["cancel"] > 20, counts


@pytest.mark.skipif(not ON_POSTGRESQL, reason="the append-only trigger is PostgreSQL's")
def test_postgresql_refuses_to_change_or_delete_a_ledger_entry(tenant):
    family = make_family(tenant)
    entry = services.add_points(tenant, family, 10, PointsReason.CHECKIN, "checkin:1")
    db.session.commit()

    for statement in (
        "UPDATE points_entries SET amount = 1000 WHERE id = :id",
        "UPDATE points_entries SET reason = 'manual' WHERE id = :id",
        "DELETE FROM points_entries WHERE id = :id",
    ):
        with pytest.raises(DBAPIError, match="never (changed|deleted)"), db.session.begin_nested():
            db.session.execute(text(statement), {"id": entry.id})

    db.session.expire_all()
    assert db.session.get(PointsEntry, entry.id).amount == 10
    assert queries.balance(family) == 10
