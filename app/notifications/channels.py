"""Delivery channels. Each takes a rendered message and raises on failure; the outbox
decides about retries."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid

from app.text import clean_line


class GatewayError(Exception):
    """The SMS gateway answered, but not with a 2xx status."""


class Senders:
    """The channels' connections for a batch of messages: one SMTP session and one
    kept-alive HTTP session to the SMS gateway, opened when first needed and closed at
    the end (`with Senders(config) as senders:`). A connection that fails is dropped, and
    the next message opens a new one."""

    def __init__(self, config: dict):
        self.config = config
        self._smtp: smtplib.SMTP | None = None
        self._http = None

    def __enter__(self) -> Senders:
        return self

    def __exit__(self, *exc) -> None:
        if self._smtp is not None:
            with contextlib.suppress(smtplib.SMTPException, OSError):
                self._smtp.quit()
        if self._http is not None:
            self._http.close()

    def email(self, *, to: str, subject: str, text: str, html: str | None) -> str:
        message = _email_message(self.config, to=to, subject=subject, text=text, html=html)
        try:
            self._smtp_session().send_message(message)
        except (smtplib.SMTPServerDisconnected, OSError):
            self._smtp = None  # the server let go of the session: one new try
            self._smtp_session().send_message(message)
        return message["Message-ID"]

    def _smtp_session(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = _smtp_connect(self.config)
        return self._smtp

    def sms(self, *, to: str, text: str, reference: str) -> None:
        import requests

        if self._http is None:
            self._http = requests.Session()
        try:
            response = self._http.post(
                self.config["SMS_GATEWAY_URL"],
                json={"to": to, "text": text, "reference": reference},
                headers={"Authorization": f"Bearer {self.config['SMS_GATEWAY_TOKEN']}"},
                timeout=self.config["SMS_GATEWAY_TIMEOUT"],
            )
        except requests.RequestException as error:
            self._http.close()
            self._http = None
            raise GatewayError(f"gateway unavailable: {error}") from error
        if not response.ok:
            raise GatewayError(f"HTTP {response.status_code}: {response.text[:300]}")


def _email_message(
    config: dict, *, to: str, subject: str, text: str, html: str | None
) -> EmailMessage:
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = clean_line(to)
    # A subject is built from names people typed: never a line break in a header.
    message["Subject"] = clean_line(subject)
    message["Message-ID"] = make_msgid(domain="cohort")
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return message


def _smtp_connect(config: dict) -> smtplib.SMTP:
    host, port, timeout = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_TIMEOUT"]
    security = config["SMTP_SECURITY"]
    if security == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    if security == "starttls":
        client.starttls(context=ssl.create_default_context())
    if config["SMTP_USERNAME"]:
        client.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
    return client


def sms_configured(config: dict) -> bool:
    return bool(config["SMS_GATEWAY_URL"])
