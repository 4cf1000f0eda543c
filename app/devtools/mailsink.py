"""A real SMTP server on loopback that keeps what it receives: the development mailbox
(`cohort dev` prints each e-mail and keeps a copy under instance/mail/) and the tests'
mail server."""

from __future__ import annotations

import email
import email.policy
import socket
import threading
from collections.abc import Callable
from email.message import EmailMessage

from aiosmtpd.controller import Controller


class MailSink:
    """Messages are kept as they arrived and parsed when asked for (`messages`), so that
    the sink answers as fast as a real mail server would (bench/outbox_delivery.py)."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        on_message: Callable[[EmailMessage], None] | None = None,
    ) -> None:
        self._raw: list[bytes] = []
        self._parsed: list[EmailMessage] = []
        self.recipients: list[str] = []  # every envelope recipient, in order
        self._peers: set = set()  # the client ends of the connections the messages came on
        self._lock = threading.Lock()
        self._on_message = on_message
        self.port = port or _free_port(host)
        self._controller = Controller(self, hostname=host, port=self.port)

    def start(self) -> MailSink:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()

    def clear(self) -> None:
        with self._lock:
            self._raw.clear()
            self._parsed.clear()
            self.recipients.clear()
            self._peers.clear()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        with self._lock:
            self._raw.append(envelope.content)
            self.recipients.extend(envelope.rcpt_tos)
            self._peers.add(tuple(session.peer))
        if self._on_message:
            self._on_message(_parse(envelope.content))
        return "250 OK"

    @property
    def messages(self) -> list[EmailMessage]:
        with self._lock:
            self._parsed.extend(_parse(raw) for raw in self._raw[len(self._parsed) :])
            return list(self._parsed)

    @property
    def connections(self) -> int:
        """How many SMTP connections the messages since `clear()` came over."""
        with self._lock:
            return len(self._peers)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _parse(raw: bytes) -> EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def _free_port(host: str) -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def body_text(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()
