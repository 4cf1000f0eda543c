"""SMS through the HTTP gateway: one JSON POST per message, retried on failure, then failed."""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import time_machine

from app.contacts.models import SourceKind
from app.contacts.services import ContactDetails, Touch, find_or_create_contact
from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import OutboxStatus
from app.notifications.services import notify_contact
from app.notifications.tasks import sweep_outbox


class Gateway:
    """A real HTTP server on loopback that records each request and answers `status`."""

    def __init__(self):
        self.status = 200
        self.requests: list[dict] = []
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                gateway.requests.append(
                    {"auth": self.headers["Authorization"], "json": json.loads(body)}
                )
                self.send_response(gateway.status)
                self.end_headers()
                self.wfile.write(b'{"error": "upstream down"}' if gateway.status >= 400 else b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/send"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def gateway(app, monkeypatch):
    gateway = Gateway()
    monkeypatch.setitem(app.config, "SMS_GATEWAY_URL", gateway.url)
    monkeypatch.setitem(app.config, "SMS_GATEWAY_TOKEN", "gw-token")
    yield gateway
    gateway.close()


def text_the_family(institution):
    contact, _ = find_or_create_contact(
        institution,
        phone="13800138000",
        details=ContactDetails(parent_name="Wang Fang"),
        touch=Touch(SourceKind.STAFF),
    )
    (message,) = notify_contact(
        institution,
        contact,
        "sign_in_link",
        {"link": "http://localhost/x"},
        dedupe_key="test-sms",
        channels_=["sms"],
    )
    db.session.commit()
    return message


def test_sms_is_posted_to_the_gateway_as_json(institution, gateway):
    message = text_the_family(institution)
    run_burst()

    (request,) = gateway.requests
    assert request["auth"] == "Bearer gw-token"
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
            sweep_outbox()
            run_burst()
        db.session.refresh(message)

    assert message.status == OutboxStatus.FAILED
    assert len(gateway.requests) == app.config["OUTBOX_MAX_ATTEMPTS"]
    assert "HTTP 500" in message.last_error and "upstream down" in message.last_error
