"""The outbox delivers every message exactly once, whatever happens to Redis or workers."""

from __future__ import annotations

from datetime import timedelta

import time_machine
from sqlalchemy import select

from app.db import utcnow
from app.extensions import db, redis_connection
from app.jobs import run_burst
from app.notifications.models import OutboxMessage, OutboxStatus
from app.notifications.services import queue_email
from app.notifications.tasks import deliver_message, sweep_outbox
from tests.factories import make_member
from tests.helpers import login


def queue_test_email(institution, dedupe_key="test:1", send_at=None) -> OutboxMessage:
    message = queue_email(
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
    return message


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


def test_message_survives_a_redis_flush_between_scheduling_and_sending(institution, mail_server):
    message = queue_test_email(institution)
    assert redis_connection.client.exists(f"rq:job:{message.job_id}")

    redis_connection.client.flushdb()  # every queued job is gone
    run_burst()
    assert mail_server.messages == []

    assert sweep_outbox() == 1  # what the scheduler runs every SWEEP_INTERVAL_SECONDS
    run_burst()
    assert len(mail_server.to("parent@example.com")) == 1

    # Sweeping again finds nothing to do, and a stray second delivery job is a no-op.
    assert sweep_outbox() == 0
    deliver_message(message.institution_id, message.id)
    run_burst()
    assert len(mail_server.to("parent@example.com")) == 1


def test_sweeper_leaves_messages_whose_job_is_still_queued(institution):
    queue_test_email(institution)
    assert sweep_outbox() == 0


def test_scheduled_message_waits_for_its_time(institution, mail_server):
    later = utcnow() + timedelta(hours=2)
    message = queue_test_email(institution, send_at=later)
    redis_connection.client.flushdb()

    assert sweep_outbox() == 0
    assert deliver_message(message.institution_id, message.id) is False
    with time_machine.travel(later + timedelta(seconds=1), tick=False):
        assert sweep_outbox() == 1
        run_burst()
    assert len(mail_server.to("parent@example.com")) == 1


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
            sweep_outbox()
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
