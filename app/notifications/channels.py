"""Delivery channels. Each takes a rendered message and raises on failure; the outbox
decides about retries."""

from __future__ import annotations

import json
import smtplib
import ssl
import urllib.error
import urllib.request
from email.message import EmailMessage
from email.utils import make_msgid

from app.text import clean_line


class GatewayError(Exception):
    """The SMS gateway answered, but not with a 2xx status."""


def send_email(
    config: dict,
    *,
    to: str,
    subject: str,
    text: str,
    html: str | None,
    message_id_domain: str = "cohort",
) -> str:
    """Send one e-mail over SMTP with the settings in `config`; return its Message-ID."""
    message = EmailMessage()
    message["From"] = config["MAIL_FROM"]
    message["To"] = clean_line(to)
    # A subject is built from names people typed: never a line break in a header.
    message["Subject"] = clean_line(subject)
    message["Message-ID"] = make_msgid(domain=message_id_domain)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")

    host, port, timeout = config["SMTP_HOST"], config["SMTP_PORT"], config["SMTP_TIMEOUT"]
    security = config["SMTP_SECURITY"]
    if security == "ssl":
        client = smtplib.SMTP_SSL(host, port, timeout=timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(host, port, timeout=timeout)
    with client:
        if security == "starttls":
            client.starttls(context=ssl.create_default_context())
        if config["SMTP_USERNAME"]:
            client.login(config["SMTP_USERNAME"], config["SMTP_PASSWORD"])
        client.send_message(message)
    return message["Message-ID"]


def sms_configured(config: dict) -> bool:
    return bool(config["SMS_GATEWAY_URL"])


def send_sms(config: dict, *, to: str, text: str, reference: str) -> None:
    """POST one text message to the SMS gateway as JSON: {"to", "text", "reference"}, with
    the token as a bearer token. `reference` is our dedupe key, so a gateway that keeps
    them can drop a repeat after a timeout we retried."""
    request = urllib.request.Request(  # noqa: S310 - the URL is the operator's own setting
        config["SMS_GATEWAY_URL"],
        data=json.dumps({"to": to, "text": text, "reference": reference}).encode(),
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {config['SMS_GATEWAY_TOKEN']}",
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=config["SMS_GATEWAY_TIMEOUT"]) as response:  # noqa: S310
            response.read()
    except urllib.error.HTTPError as error:
        detail = error.read(300).decode("utf-8", "replace")
        raise GatewayError(f"HTTP {error.code}: {detail}") from error
