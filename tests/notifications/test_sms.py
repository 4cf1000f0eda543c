"""SMS through the HTTP gateway: one JSON POST per message, retried on failure, then failed."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import select

from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, Touch, find_or_create_contact
from app.devtools.smssink import SmsSink
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxMessage, OutboxStatus
from app.notifications.services import notify_contact


@pytest.fixture
def gateway(app, monkeypatch):
    gateway = SmsSink().start()  # a real HTTP server on loopback
    monkeypatch.setitem(app.config, "SMS_GATEWAY_URL", gateway.url)
    monkeypatch.setitem(app.config, "SMS_GATEWAY_TOKEN", "gw-token")
    yield gateway
    gateway.stop()


def text_the_family(institution):
    contact, _ = find_or_create_contact(
        institution,
        phone="13800138000",
        details=ContactDetails(parent_name="Wang Fang"),
        touch=Touch(SourceKind.STAFF),
    )
    notify_contact(
        institution,
        contact,
        "sign_in_link",
        {"link": "http://localhost/x"},
        dedupe_key="test-sms",
        channels_=["sms"],
    )
    db.session.commit()
    return db.session.scalars(select(OutboxMessage)).one()


def test_sms_is_posted_to_the_gateway_as_json(institution, gateway):
    message = text_the_family(institution)
    run_burst()

    (request,) = gateway.requests
    assert request["authorization"] == "Bearer gw-token"
    assert request["json"]["to"] == "+8613800138000"
    assert request["json"]["text"].startswith(f"【{institution.name}】")
    assert "http://localhost/x" in request["json"]["text"]
    db.session.refresh(message)
    assert message.status == OutboxStatus.SENT


def test_a_gateway_answering_500_is_retried_with_backoff_then_marked_failed(
    app, institution, gateway
):
    gateway.status = 500
    message = text_the_family(institution)
    run_burst()
    db.session.refresh(message)
    assert message.status == OutboxStatus.PENDING and message.attempts == 1
    assert "HTTP 500" in message.last_error

    for _ in range(app.config["OUTBOX_MAX_ATTEMPTS"] - 1):
        with time_machine.travel(message.send_at + timedelta(seconds=1), tick=False):
            run_burst()
        db.session.refresh(message)

    assert message.status == OutboxStatus.FAILED
    assert len(gateway.requests) == app.config["OUTBOX_MAX_ATTEMPTS"]
    assert "HTTP 500" in message.last_error and "gateway unavailable" in message.last_error
