"""Parallel redemptions against a real database: the last unit goes to one family, and
one family cannot spend the same points twice."""

from __future__ import annotations

import threading

import pytest
from flask_babel import force_locale
from sqlalchemy import select

from app.contacts.models import Contact
from app.errors import ServiceError
from app.extensions import db
from app.institutions.models import Institution
from app.loyalty import queries, services
from app.loyalty.models import PointsReason, Redemption, Reward
from app.portal.services import SESSION_KEY
from app.tenancy import bound
from tests.helpers import ON_POSTGRESQL, committed_data, committed_institution, run_in_parallel
from tests.loyalty.test_points import make_family, make_reward

pytestmark = pytest.mark.committed
# The service-level races wait at a barrier inside their transactions: on SQLite, whose
# transactions take the one write lock as they begin, the second would wait for the first.
row_locks = pytest.mark.skipif(not ON_POSTGRESQL, reason="PostgreSQL's row locks are tested")


def school_with_families(made, points: list[int], rewards: list[tuple[int, int]]):
    """A committed institution with a family holding each of `points`, and a reward for
    each (price, stock): the institution's id and slug, the families' ids and the
    rewards' ids."""
    institution = committed_institution(made)
    with bound(institution):
        families = [make_family(institution, n) for n in range(len(points))]
        for family, amount in zip(families, points, strict=True):
            services.add_points(institution, family, amount, PointsReason.CHECKIN, f"c:{family.id}")
        made_rewards = [make_reward(institution, price, stock) for price, stock in rewards]
        db.session.commit()
        result = (
            (institution.id, institution.slug),
            [f.id for f in families],
            [r.id for r in made_rewards],
        )
    db.session.remove()
    return result


def redeem_together(app, institution_id: int, attempts: list[tuple[int, int]]) -> list:
    """Each (family id, reward id) redeemed in its own thread, app context, session and
    connection, all after every one has loaded its reward (so each saw it in stock): the
    redemption ids and refusals, in order."""
    loaded = threading.Barrier(len(attempts), timeout=30)

    def attempt(i: int):
        contact_id, reward_id = attempts[i]
        with app.app_context():
            institution = db.session.get(Institution, institution_id)
            with bound(institution):
                contact = db.session.get(Contact, contact_id)
                reward = db.session.get(Reward, reward_id)
                assert reward.stock > 0
                loaded.wait()
                try:
                    redemption = services.redeem_reward(
                        institution, contact, reward, price_seen=reward.points_price
                    )
                except ServiceError as error:
                    db.session.rollback()
                    return error
                db.session.commit()
                return redemption.id

    return run_in_parallel(len(attempts), attempt)


def state(institution_id: int, family_ids, reward_ids):
    db.session.remove()
    institution = db.session.get(Institution, institution_id)
    with bound(institution):
        balances = [queries.balance(db.session.get(Contact, i)) for i in family_ids]
        stocks = [db.session.get(Reward, i).stock for i in reward_ids]
        redemptions = db.session.scalars(
            select(Redemption).where(Redemption.institution_id == institution.id)
        ).all()
    return balances, stocks, redemptions


@row_locks
def test_two_families_redeeming_the_last_unit_at_once_one_gets_it_one_is_told_sold_out(app):
    with committed_data() as made:
        (school, slug), families, (reward,) = school_with_families(made, [100, 100], [(80, 1)])

        results = redeem_together(app, school, [(families[0], reward), (families[1], reward)])

        refusals = [r for r in results if isinstance(r, ServiceError)]
        wins = [r for r in results if isinstance(r, int)]
        assert len(wins) == 1 and len(refusals) == 1, results
        assert refusals[0].code == "sold_out"
        with force_locale("en"):  # outside a request: the default language is Chinese
            assert str(refusals[0].message) == "Sorry, this reward is sold out."
        balances, stocks, redemptions = state(school, families, [reward])
        assert stocks == [0]
        assert [r.id for r in redemptions] == wins
        winner = families.index(redemptions[0].contact_id)
        assert balances[winner] == 20 and balances[1 - winner] == 100  # the loser spent nothing


@row_locks
def test_one_family_redeeming_two_rewards_at_once_with_points_for_one_gets_one(app):
    with committed_data() as made:
        (school, _slug), (family,), rewards = school_with_families(made, [100], [(70, 5), (60, 5)])

        results = redeem_together(app, school, [(family, rewards[0]), (family, rewards[1])])

        refusals = [r for r in results if isinstance(r, ServiceError)]
        assert len(refusals) == 1 and refusals[0].code == "not_enough_points", results
        balances, stocks, redemptions = state(school, [family], rewards)
        (redemption,) = redemptions
        assert balances == [100 - redemption.points] and balances[0] >= 0
        assert sorted(stocks) == [4, 5]


def test_parallel_requests_for_the_last_unit_show_one_family_a_sold_out_message(app):
    """The same race through the family's page: two phones press Redeem at once."""
    with committed_data() as made:
        (school, slug), families, (reward,) = school_with_families(made, [100, 100], [(80, 1)])

        def press(n: int) -> str:
            client = app.test_client()
            with client.session_transaction() as session:
                session[SESSION_KEY] = {str(school): families[n]}
            response = client.post(
                f"/{slug}/me/rewards/{reward}/redeem",
                data={"price_seen": "80"},
                environ_base={"REMOTE_ADDR": f"10.50.0.{n + 1}"},
                follow_redirects=True,
            )
            assert response.status_code == 200
            return response.get_data(as_text=True)

        pages = run_in_parallel(2, press)

        assert sorted("is yours" in page for page in pages) == [False, True], pages
        assert sum("this reward is sold out" in page for page in pages) == 1
        balances, stocks, redemptions = state(school, families, [reward])
        assert stocks == [0] and len(redemptions) == 1 and sorted(balances) == [20, 100]
