"""Races and crashes against a real database and localstripe: no over-full team, no
double capture."""

from __future__ import annotations

import multiprocessing
import os

import pytest

from app.campaigns.models import MemberStatus, ReleaseReason, Team, TeamStatus
from app.campaigns.tasks import settle_team
from app.extensions import db
from app.payments import gateway
from app.payments.models import PaymentStatus
from tests.factories import make_group_buy
from tests.helpers import (
    ON_POSTGRESQL,
    captures_of,
    committed_data,
    committed_institution,
    intent,
    join_team,
    members,
    only_team,
    open_team,
    parent,
    run_in_parallel,
)


@pytest.mark.committed
@pytest.mark.skipif(
    not ON_POSTGRESQL,
    reason="SQLite has one writer at a time, which serialises the race away; "
    "this runs against PostgreSQL (TEST_DATABASE_URL, as CI sets it)",
)
def test_ten_parallel_joins_for_the_last_seat_give_one_member_and_nine_released_holds(app):
    with committed_data() as made:
        institution = committed_institution(made)
        group_buy = make_group_buy(institution, team_size=3)
        client = app.test_client()
        assert open_team(client, institution, group_buy, 1).status_code == 302
        team = only_team(group_buy)
        assert join_team(client, institution, group_buy, team, 2).status_code == 302
        url = f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}"
        db.session.remove()

        def join(i: int) -> int:
            n = 100 + i
            return (
                app.test_client()
                .post(url, data=parent(n), environ_base={"REMOTE_ADDR": f"10.41.0.{n % 250}"})
                .status_code
            )

        results = run_in_parallel(10, join)

        assert results == [302] * 10, results
        team = only_team(group_buy)
        db.session.refresh(team)
        assert (team.status, team.member_count) == (TeamStatus.SUCCEEDED, 3)
        late = [m for m in members(team) if not m.is_leader][1:]  # the 10 racers
        assert len(late) == 10
        winners = [m for m in late if m.status == MemberStatus.AUTHORISED]
        losers = [m for m in late if m.status == MemberStatus.RELEASED]
        assert len(winners) == 1 and len(losers) == 9
        assert {m.release_reason for m in losers} == {ReleaseReason.TEAM_FULL}
        for loser in losers:
            assert loser.payment.status == PaymentStatus.RELEASED
            assert intent(loser.payment.intent_id)["status"] == "canceled"
        held = [m for m in members(team) if m.payment.status == PaymentStatus.AUTHORISED]
        assert len(held) == 3


def _settle_and_die_after_captures(app, institution_id: int, team_id: int, captures: int):
    """A worker process killed right after Stripe captured `captures` holds, before it could
    commit anything (os._exit: no cleanup, no rollback message, like SIGKILL)."""
    with app.app_context():
        db.engine.dispose(close=False)
        real_capture = gateway.capture_intent
        done = []

        def capture_then_die(payment):
            result = real_capture(payment)
            done.append(payment.id)
            if len(done) == captures:
                os._exit(9)
            return result

        gateway.capture_intent = capture_then_die
        settle_team(institution_id, team_id)
    os._exit(0)


@pytest.mark.committed
def test_a_worker_killed_mid_settlement_restarts_without_capturing_twice(app):
    with committed_data() as made:
        institution = committed_institution(made)
        group_buy = make_group_buy(institution, team_size=3)
        institution_id, slug, code = institution.id, institution.slug, group_buy.code
        client = app.test_client()
        db.session.remove()  # on SQLite, the test's open transaction would hold the lock
        client.post(f"/{slug}/gb/{code}", data=parent(1))
        team = only_team(group_buy)
        team_id, url = team.id, f"/{slug}/gb/{code}/t/{team.code}"
        db.session.remove()
        for n in (2, 3):
            assert client.post(url, data=parent(n)).status_code == 302
        assert db.session.get(Team, team_id).status == TeamStatus.SUCCEEDED
        db.session.remove()

        worker = multiprocessing.get_context("fork").Process(
            target=_settle_and_die_after_captures, args=(app, institution_id, team_id, 2)
        )
        worker.start()
        worker.join(60)

        assert worker.exitcode == 9
        team = db.session.get(Team, team_id)
        stripe_states = [intent(m.payment.intent_id)["status"] for m in members(team)]
        assert sorted(stripe_states) == ["requires_capture", "succeeded", "succeeded"]
        assert {m.status for m in members(team)} == {MemberStatus.AUTHORISED}  # nothing committed
        db.session.remove()

        settle_team(institution_id, team_id)  # the restarted worker, or the sweeper

        team = db.session.get(Team, team_id)
        assert team.settled_at is not None
        for member in members(team):
            assert member.status == MemberStatus.CAPTURED
            assert member.payment.status == PaymentStatus.CAPTURED
            assert captures_of(member.payment.intent_id) == 1
        causes = [
            t.cause
            for m in members(team)
            for t in m.payment.transitions
            if t.to_status == PaymentStatus.CAPTURED
        ]
        assert sum("read back" in cause for cause in causes) == 2
