"""Delivery channels. Each takes a rendered message and raises on failure; the outbox
decides about retries."""

from __future__ import annotations

import contextlib
import smtplib
import ssl
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import formataddr, formatdate, parseaddr

from app.text import clean_line


class GatewayError(Exception):
    """The SMS gateway answered, but not with a 2xx status."""


class Senders:
    """The channels' connections for a batch of messages: one SMTP session and one
    kept-alive HTTP connection to the SMS gateway, opened when first needed and closed at
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
            self._http.clear()

    def email(self, *, to: str, subject: str, text: str, html: str | None, reference: str) -> str:
        """Send an e-mail whose Message-ID is made from `reference` (the outbox message):
        sent again after a crash, it is the same message to mail servers and clients."""
        message = _email_message(
            self.config, to=to, subject=subject, text=text, html=html, reference=reference
        )
        sender = parseaddr(self.config["MAIL_FROM"])[1]
        data = message.as_bytes(policy=_SMTP_LINES)
        try:
            self._smtp_session().sendmail(sender, [clean_line(to)], data)
        except (smtplib.SMTPServerDisconnected, OSError):
            self._smtp = None  # the server let go of the session: one new try
            self._smtp_session().sendmail(sender, [clean_line(to)], data)
        return message["Message-ID"]

    def _smtp_session(self) -> smtplib.SMTP:
        if self._smtp is None:
            self._smtp = _smtp_connect(self.config)
        return self._smtp

    def sms(self, *, to: str, text: str, reference: str) -> None:
        import json

        import urllib3

        if self._http is None:
            self._http = urllib3.PoolManager(
                num_pools=1,
                maxsize=1,
                retries=False,  # the outbox retries, with its own back-off
                timeout=self.config["SMS_GATEWAY_TIMEOUT"],
            )
        try:
            response = self._http.request(
                "POST",
                self.config["SMS_GATEWAY_URL"],
                body=json.dumps({"to": to, "text": text, "reference": reference}).encode(),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {self.config['SMS_GATEWAY_TOKEN']}",
                },
            )
        except urllib3.exceptions.HTTPError as error:
            self._http.clear()
            raise GatewayError(f"gateway unavailable: {error}") from error
        if not 200 <= response.status < 300:
            text = response.data.decode(errors="replace")[:300]
            raise GatewayError(f"HTTP {response.status}: {text}")


_SMTP_LINES = compat32.clone(linesep="\r\n")  # what SMTP's DATA takes, as is


def _email_message(
    config: dict, *, to: str, subject: str, text: str, html: str | None, reference: str
) -> Message:
    """The e-mail as MIME parts. Built with the email package's classic classes: a
    reminder wave builds thousands, and these cost a fraction of EmailMessage's."""
    if html:
        message = MIMEMultipart("alternative")
        message.attach(MIMEText(text, "plain", "utf-8"))
        message.attach(MIMEText(html, "html", "utf-8"))
    else:
        message = MIMEText(text, "plain", "utf-8")
    name, address = parseaddr(config["MAIL_FROM"])
    message["From"] = formataddr((name, address), charset="utf-8")
    message["To"] = clean_line(to)
    # A subject is built from names people typed: never a line break in a header.
    message["Subject"] = Header(clean_line(subject), "utf-8").encode()
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = f"<{reference}@{address.rpartition('@')[2] or 'cohort'}>"
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
