"""The outbox delivers every message exactly once, whatever happens to Redis or workers."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from app.db import utcnow
from app.extensions import db, redis_connection
from app.jobs import run_burst
from app.notifications import services
from app.notifications.models import OutboxMessage, OutboxStatus
from app.notifications.services import queue_email
from tests.factories import make_member
from tests.helpers import (
    ON_POSTGRESQL,
    committed_data,
    committed_institution,
    database_down_from,
    login,
)


def queue_test_email(institution, dedupe_key="test:1", send_at=None) -> OutboxMessage:
    queue_email(
        institution_id=institution.id,
        recipient="parent@example.com",
        template="welcome",
        context={
            "name": "Parent",
            "institution_name": institution.name,
            "action_url": "http://localhost/x",
        },
        locale="en",
        dedupe_key=dedupe_key,
        send_at=send_at,
    )
    db.session.commit()
    return db.session.scalar(select(OutboxMessage).where(OutboxMessage.dedupe_key == dedupe_key))


def test_queued_message_is_delivered_over_smtp_once(institution, mail_server):
    message = queue_test_email(institution)

    run_burst()

    assert len(mail_server.to("parent@example.com")) == 1
    db.session.refresh(message)
    assert message.status == OutboxStatus.SENT and message.attempts == 1


def test_same_dedupe_key_is_one_message(institution):
    first = queue_test_email(institution)
    second = queue_test_email(institution)
    assert first.id == second.id
    assert len(db.session.scalars(select(OutboxMessage)).all()) == 1


def test_a_redis_flush_loses_nothing_the_outbox_table_is_the_queue(institution, mail_server):
    queue_test_email(institution)
    redis_connection.client.flushdb()  # the wake-up and every queued job are gone

    run_burst()
    assert len(mail_server.to("parent@example.com")) == 1
    run_burst()  # and nothing is sent twice
    assert len(mail_server.to("parent@example.com")) == 1


def test_a_message_claimed_by_a_deliverer_that_died_is_sent_once_its_claim_runs_out(
    institution, mail_server
):
    message = queue_test_email(institution)
    now = utcnow()
    # A deliverer claims it, and is killed before sending it.
    assert services.claim_due(now, 100, timedelta(minutes=2)) == [message.id]
    run_burst()  # another deliverer leaves it alone meanwhile
    assert mail_server.messages == []
    with time_machine.travel(now + timedelta(minutes=2, seconds=1), tick=False):
        run_burst()
    assert len(mail_server.to("parent@example.com")) == 1


def test_two_deliverers_never_claim_the_same_message(institution):
    for n in range(10):
        queue_test_email(institution, dedupe_key=f"test:{n}")
    now = utcnow()
    first = services.claim_due(now, 6, timedelta(minutes=2))
    second = services.claim_due(now, 6, timedelta(minutes=2))
    assert len(first) == 6 and len(second) == 4 and not set(first) & set(second)


def test_scheduled_message_waits_for_its_time(institution, mail_server):
    later = utcnow() + timedelta(hours=2)
    queue_test_email(institution, send_at=later)

    run_burst()
    assert mail_server.messages == []
    with time_machine.travel(later + timedelta(seconds=1), tick=False):
        run_burst()
    assert len(mail_server.to("parent@example.com")) == 1


def test_a_batch_of_e_mails_goes_out_over_one_smtp_connection(institution, mail_server):
    for n in range(5):
        queue_test_email(institution, dedupe_key=f"test:{n}")
    run_burst()
    assert len(mail_server.to("parent@example.com")) == 5
    assert mail_server.connections == 1


def test_smtp_failure_is_retried_with_backoff_then_marked_failed(
    app, institution, mail_server, monkeypatch
):
    monkeypatch.setitem(app.config, "SMTP_PORT", 1)  # a real refused connection
    message = queue_test_email(institution)
    start = utcnow()

    run_burst()
    db.session.refresh(message)
    assert message.status == OutboxStatus.PENDING and message.attempts == 1
    assert "ConnectionRefusedError" in message.last_error
    assert message.send_at - start >= timedelta(seconds=30)

    waits = []
    for _ in range(app.config["OUTBOX_MAX_ATTEMPTS"] - 1):
        previous = message.send_at
        with time_machine.travel(message.send_at + timedelta(seconds=1), tick=False):
            run_burst()
        db.session.refresh(message)
        waits.append(message.send_at - previous)

    assert message.status == OutboxStatus.FAILED
    assert message.attempts == app.config["OUTBOX_MAX_ATTEMPTS"]
    assert "ConnectionRefusedError" in message.last_error
    assert waits[0] > timedelta(seconds=30) and waits[1] > waits[0]  # backoff doubles
    assert mail_server.messages == []


def test_owners_see_failed_messages_and_can_send_them_again(
    app, client, institution, owner, mail_server, monkeypatch
):
    monkeypatch.setitem(app.config, "OUTBOX_MAX_ATTEMPTS", 1)
    monkeypatch.setitem(app.config, "SMTP_PORT", 1)
    message = queue_test_email(institution)
    run_burst()
    db.session.refresh(message)
    assert message.status == OutboxStatus.FAILED

    login(client, owner)
    home = client.get(f"/staff/{institution.slug}/").get_data(as_text=True)
    assert "1 message could not be delivered" in home
    page = client.get(f"/staff/{institution.slug}/notifications?status=failed")
    assert "parent@example.com" in page.get_data(as_text=True)
    assert "ConnectionRefusedError" in page.get_data(as_text=True)

    monkeypatch.setitem(app.config, "SMTP_PORT", mail_server.port)
    response = client.post(f"/staff/{institution.slug}/notifications/{message.id}/retry")
    assert response.status_code == 302
    run_burst()
    db.session.refresh(message)
    assert message.status == OutboxStatus.SENT
    assert len(mail_server.to("parent@example.com")) == 1


def test_staff_members_cannot_see_the_outbox(client, institution):
    staff = make_member(institution)
    login(client, staff)
    assert client.get(f"/staff/{institution.slug}/notifications").status_code == 403


def test_the_message_list_pages_through_long_histories(client, institution, owner):
    for n in range(51):
        queue_test_email(institution, dedupe_key=f"test:{n}")
    login(client, owner)
    url = f"/staff/{institution.slug}/notifications"
    first = client.get(url).get_data(as_text=True)
    assert "Page 1 of 2" in first and f'href="{url}?page=2"' in first
    second = client.get(f"{url}?page=2&status=pending").get_data(as_text=True)
    assert "Page 2 of 2" in second and "page=1&amp;status=pending" in second
    assert second.count("parent@example.com") == 1
    assert client.get(f"{url}?page=-3&status=bogus").status_code == 200


@pytest.mark.committed
@pytest.mark.skipif(not ON_POSTGRESQL, reason="terminates PostgreSQL backends")
def test_a_deliverer_cut_off_from_the_database_mid_batch_sends_nothing_twice(app, mail_server):
    """The database goes away just after the first message went: the deliverer keeps that
    message's record and the rest of its claim, and when the database is back it records
    the one and sends the others at once (not after its claim's lease), none twice."""
    with committed_data() as made:
        institution = committed_institution(made)
        institution_id = institution.id
        for n in range(5):
            queue_test_email(institution, dedupe_key=f"cut:{n}")
        db.session.remove()
        unfinished = services.Unfinished()

        with (
            database_down_from("UPDATE outbox_messages SET status"),
            pytest.raises(DBAPIError),
            db.platform(),
        ):
            services.deliver_due(unfinished=unfinished)
        db.session.remove()
        assert len(mail_server.to("parent@example.com")) == 1  # gone, but not recorded
        assert (len(unfinished.records), len(unfinished.ids)) == (1, 4)

        with db.platform():
            assert services.deliver_due(unfinished=unfinished) == 4
        assert len(mail_server.to("parent@example.com")) == 5
        statuses = db.session.scalars(
            select(OutboxMessage.status).where(OutboxMessage.institution_id == institution_id)
        ).all()
        assert statuses == [OutboxStatus.SENT] * 5
