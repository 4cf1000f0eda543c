"""How many SQL statements a family's POST sends, on the real database: the paths families
crowd at once (a lead form, a trial registration, a group-buy join) each stay within a
budget, so a change that adds a query per row or a lock per request shows here rather than
only in bench/. Counting statements is deterministic; timing is left to bench/."""

from __future__ import annotations

import pytest

from app.extensions import db
from app.jobs import run_burst
from tests.factories import (
    local_time,
    make_course,
    make_flash_sale,
    make_form,
    make_group_buy,
)
from tests.helpers import (
    ON_POSTGRESQL,
    committed_data,
    committed_institution,
    parent,
    statements,
)

pytestmark = [
    pytest.mark.committed,
    # The budgets are those of production's database; SQLite is sent other statements.
    pytest.mark.skipif(not ON_POSTGRESQL, reason="statement budgets are PostgreSQL's"),
]

FAMILY = {"parent_name": "Wang Fang", "child_name": "Leo", "subject": "Maths", "consent": "y"}


def post(app, url, data, n):
    return app.test_client().post(
        url, data=data, environ_base={"REMOTE_ADDR": f"10.30.{n // 250}.{n % 250}"}
    )


def show(sent):
    print(f"\n{len(sent)} statements")
    for statement in sent:
        print("  ", " ".join(statement.split())[:160])


def test_a_lead_form_post(app):
    with committed_data() as made:
        institution = committed_institution(made)
        url = f"/{institution.slug}/f/{make_form(institution).code}"
        db.session.remove()
        post(app, url, {**FAMILY, "phone": "13800138000"}, 1)  # the first request warms up
        with statements() as sent:
            assert post(app, url, {**FAMILY, "phone": "13800138001"}, 2).status_code == 302
        show(sent)
        # was 26, with the form's row locked throughout; the round-robin's turn (none
        # here) is one statement; the form is decided on its terms kept in memory, not
        # read again; a new family's contact, first touch and child are one INSERT, and
        # its timeline rows wait for the lead's
        assert len(sent) <= 12


def test_a_trial_registration(app):
    with committed_data() as made:
        institution = committed_institution(made)
        course = make_course(
            institution, starts=[local_time(institution, d) for d in (3, 10, 17, 24, 31)]
        )
        url = f"/{institution.slug}/c/{course.code}"
        lessons = [lesson.id for lesson in course.lessons]
        db.session.remove()
        data = {
            "parent_name": "Wang Fang",
            "student_name": "Leo",
            "consent": "y",
            "lessons": lessons,
        }
        post(app, url, {**data, "phone": "13800138000"}, 1)
        with statements() as sent:
            assert post(app, url, {**data, "phone": "13800138001"}, 2).status_code == 302
        show(sent)
        # five lessons, claimed in one statement; was 108, each reminder written alone; a
        # new family's lead is written already booked, not inserted and then updated, and
        # its timeline rows of the lead and the enrolment go in one INSERT; the family's
        # contact, first touch and child are one INSERT too (were four statements); the
        # course comes with its lessons, and the reminder settings from memory
        assert len(sent) <= 13


def open_a_team(app, made, team_size: int) -> str:
    """A committed group buy whose first family (parent 1) opened a team: its URL."""
    institution = committed_institution(made)
    group_buy = make_group_buy(institution, team_size=team_size)
    url = f"/{institution.slug}/gb/{group_buy.code}"
    db.session.remove()
    return post(app, url, parent(1), 1).headers["Location"]


def test_a_group_buy_join(app):
    with committed_data() as made:
        team_url = open_a_team(app, made, team_size=5)
        with statements() as sent:
            response = post(app, team_url, parent(2), 2)
        show(sent)
        assert response.status_code in (302, 303), response.status_code
        # was 61; two commits around Stripe's calls and a read of the outcome; and the
        # family's lead moved to trial_booked once its place is held (4 statements), and
        # its funnel row with it (1: written new at the first commit, moved at the second);
        # a new family's contact, first touch and child in one INSERT
        assert len(sent) <= 44


def test_a_join_refused_by_a_full_team(app):
    with committed_data() as made:
        team_url = open_a_team(app, made, team_size=4)
        for n in (2, 3, 4):
            assert post(app, team_url, parent(n), n).status_code in (302, 303)
        with statements() as sent:
            response = post(app, team_url, parent(5), 5)
        show(sent)
        assert response.status_code == 422
        assert response.get_data(as_text=True).count('class="avatar"') == 4
        # the team's page with the refusal: its four families' names in one query, not
        # one query each (was 13; a rush is mostly refusals once the teams fill)
        assert len(sent) <= 9


def test_a_flash_sale_purchase(app):
    """A seat taken (paid for next, in a request of its own) and an attempt refused by
    Redis ask nothing of the database: the sale's terms are kept in the web process, the
    winner's order is queued in Redis, and the writer job writes a batch of them in one
    transaction."""
    with committed_data() as made:
        institution = committed_institution(made)
        url = f"/{institution.slug}/fs/{make_flash_sale(institution, stock=11).code}"
        db.session.remove()
        post(app, url, parent(0), 0)
        with statements() as sent:
            response = post(app, url, parent(1), 1)
        show(sent)
        for n in range(2, 11):
            post(app, url, parent(n), n)
        with statements() as refused:
            sold_out = post(app, url, parent(11), 11)
        show(refused)
        with statements() as written:
            run_burst()  # the writer: 11 orders (new families) in one transaction
        show(written)
        assert (response.status_code, sold_out.status_code) == (302, 302)
        # 17 when the request wrote the order itself, 3 when it read the sale
        assert sent == [] and refused == []
        # each order 14 (a new family, its payment, its lead; no savepoint between them),
        # the batch's seats claimed in one UPDATE, and 8 for the job and the burst (the row
        # context, the institution, the sale, which of the orders are written already, the
        # outbox's claim)
        assert len(written) <= 8 + 14 * 11 + 1
