"""Tenancy below the web: every job binds the institution it was enqueued for, whatever is
bound around it, and the database refuses a child row of another institution's parent."""

from __future__ import annotations

import inspect
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.campaigns.models import MemberStatus, Team, TeamMember, TeamStatus
from app.contacts.models import Contact, Student
from app.db import utcnow
from app.extensions import db
from app.jobs import JOBS, enqueue, job, run_burst
from app.notifications.models import Channel, OutboxMessage
from app.payments.models import Payment, PaymentStatus, StripeEvent
from app.tenancy import bound, current_institution
from tests.factories import make_group_buy, make_institution
from tests.helpers import open_team


@job()
def probe(institution) -> tuple[int, list[int]]:
    """What a job sees: the bound institution, and whose contacts an unfiltered ORM
    query returns."""
    seen = {contact.institution_id for contact in db.session.scalars(select(Contact))}
    return current_institution().id, sorted(seen)


@pytest.fixture
def a_and_b(client):
    """Two institutions, each with a group buy whose team has one held place (a card hold
    at localstripe, a payment, outbox messages)."""
    a, b = make_institution(), make_institution()
    db.session.commit()
    for institution in (a, b):
        group_buy = make_group_buy(institution, team_size=2)
        assert open_team(client, institution, group_buy).status_code == 302
    return a, b


def rows_of(institution):
    team = db.session.scalar(select(Team).where(Team.institution_id == institution.id))
    member = db.session.scalar(select(TeamMember).where(TeamMember.team_id == team.id))
    message = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.institution_id == institution.id,
            OutboxMessage.template == "team_joined",
            OutboxMessage.channel == Channel.EMAIL,
        )
    )
    return team, member, member.payment, message


def snapshot(institution) -> tuple:
    team, member, payment, message = rows_of(institution)
    db.session.refresh(team), db.session.refresh(member), db.session.refresh(payment)
    db.session.refresh(message)
    return team.status, member.status, payment.status, message.status, message.attempts


def test_every_job_is_declared_for_one_institution_or_for_the_platform():
    for name, fn in JOBS.items():
        parameters = list(inspect.signature(fn.__wrapped__).parameters)
        if fn.for_institution:
            assert parameters[0] == "institution", name
        else:
            assert "institution" not in parameters, name


def test_a_job_sees_only_its_institution_whatever_is_bound_around_it(a_and_b):
    a, b = a_and_b
    assert probe(a.id) == (a.id, [a.id])  # nothing bound around it
    with bound(b):
        assert probe(a.id) == (a.id, [a.id])
        assert current_institution() is b  # the job's binding ended with the job
        enqueue("tests.probe", a.id, job_id="probe")
        run_burst()
    assert probe(b.id) == (b.id, [b.id])


def test_jobs_given_another_institutions_rows_change_nothing(a_and_b):
    a, b = a_and_b
    team_b, member_b, payment_b, message_b = rows_of(b)
    event_b = StripeEvent(
        institution_id=b.id, event_id="evt_b", type="payment_intent.canceled", payload={}
    )
    db.session.add(event_b)
    db.session.commit()
    before = snapshot(b)
    with time_machine.travel(utcnow() + timedelta(days=2), tick=False), bound(b):
        # B bound around them, as a careless caller might: the jobs still work for A.
        assert JOBS["payments.reconcile_payment"](a.id, payment_b.id) is None
        assert JOBS["payments.release_payment"](a.id, payment_b.id, "test") is None
        assert JOBS["campaigns.fail_team"](a.id, team_b.id) is False
        assert JOBS["campaigns.settle_team"](a.id, team_b.id) is False
        assert JOBS["payments.process_stripe_event"](a.id, event_b.id) is None
    assert snapshot(b) == before
    db.session.refresh(event_b)
    assert event_b.processed_at is None


def test_jobs_do_their_work_for_their_own_institution_with_another_bound(a_and_b, mail_server):
    a, b = a_and_b
    team_a, member_a, payment_a, message_a = rows_of(a)
    before_b = snapshot(b)
    with time_machine.travel(team_a.expires_at + timedelta(seconds=1), tick=False), bound(b):
        assert JOBS["campaigns.fail_team"](a.id, team_a.id) is True
    db.session.refresh(team_a), db.session.refresh(member_a), db.session.refresh(payment_a)
    assert team_a.status == TeamStatus.FAILED
    assert (member_a.status, payment_a.status) == (MemberStatus.RELEASED, PaymentStatus.RELEASED)
    assert snapshot(b)[:3] == before_b[:3]  # B's team, place and hold are untouched


def test_the_database_refuses_a_child_of_another_institutions_parent(a_and_b):
    a, b = a_and_b
    a_contact = db.session.scalar(select(Contact).where(Contact.institution_id == a.id))
    b_payment = db.session.scalar(select(Payment).where(Payment.institution_id == b.id))
    a_team = db.session.scalar(select(Team).where(Team.institution_id == a.id))
    children = [
        Student(institution_id=b.id, contact_id=a_contact.id, name="Not theirs"),
        TeamMember(
            institution_id=a.id,
            team_id=a_team.id,
            contact_id=a_contact.id,
            student_id=a_contact.students[0].id,
            payment_id=b_payment.id,  # a payment of B for a place in A's team
            price_amount=1,
            status=MemberStatus.PENDING,
        ),
    ]
    for child in children:
        with pytest.raises(IntegrityError), db.session.begin_nested():
            db.session.add(child)
            db.session.flush()
