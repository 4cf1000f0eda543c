"""Delivery channels. Each takes a rendered message and raises on failure; the outbox
decides about retries."""

from __future__ import annotations

import smtplib
import ssl
from email.message import EmailMessage
from email.utils import make_msgid


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
    message["To"] = to
    message["Subject"] = subject
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
