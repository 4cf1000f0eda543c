"""The outbox: queue a message in the caller's transaction, deliver it later, exactly once
per dedupe key and at least once despite lost jobs."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app, render_template
from flask_babel import force_locale
from jinja2 import Template
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.db import utcnow
from app.extensions import db
from app.notifications import channels
from app.notifications.models import Channel, OutboxMessage, OutboxStatus

log = logging.getLogger(__name__)


def queue_email(
    *,
    institution_id: int | None,
    recipient: str,
    template: str,
    context: dict,
    locale: str,
    dedupe_key: str,
    send_at: datetime | None = None,
) -> OutboxMessage:
    """Write an e-mail to the outbox and enqueue its delivery after the commit.

    A message with the same dedupe key (per institution) is returned as it is instead of
    being queued twice, so callers can be retried safely.
    """
    existing = _find(institution_id, dedupe_key)
    if existing is not None:
        return existing
    message = OutboxMessage(
        institution_id=institution_id,
        channel=Channel.EMAIL,
        recipient=recipient,
        template=template,
        context=context,
        locale=locale,
        dedupe_key=dedupe_key,
        send_at=send_at or utcnow(),
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:  # a concurrent request queued the same message first
        return _find(institution_id, dedupe_key)
    _schedule_delivery(message)
    return message


def _find(institution_id: int | None, dedupe_key: str) -> OutboxMessage | None:
    institution_clause = (
        OutboxMessage.institution_id.is_(None)
        if institution_id is None
        else OutboxMessage.institution_id == institution_id
    )
    return db.session.scalar(
        select(OutboxMessage)
        .where(institution_clause, OutboxMessage.dedupe_key == dedupe_key)
        .execution_options(all_institutions=True)
    )


def _schedule_delivery(message: OutboxMessage) -> None:
    from app.jobs import enqueue_after_commit  # imported here: jobs imports tenancy and db
    from app.notifications.tasks import deliver_outbox_message

    at = message.send_at if message.send_at > utcnow() else None
    enqueue_after_commit(deliver_outbox_message, message.id, job_id=message.job_id, at=at)


def render_email(message: OutboxMessage) -> tuple[str, str, str]:
    """Subject, plain text and HTML of an e-mail, in the message's own language."""
    with force_locale(message.locale):
        env = current_app.jinja_env
        template: Template = env.get_template(f"emails/{message.template}.txt")
        context = template.new_context(dict(message.context))
        subject = "".join(template.blocks["subject"](context)).strip()
        text = "".join(template.blocks["body"](context)).strip() + "\n"
        html = render_template("emails/layout.html", subject=subject, text=text, **message.context)
    return subject, text, html


def deliver_message(message_id: int, now: datetime | None = None) -> bool:
    """Send one outbox message if it is still due; return True if it was sent now.

    The row is locked for the whole attempt, so two deliveries of the same message (the
    scheduled job and the sweeper's) run one after the other, and the second finds it sent.
    """
    now = now or utcnow()
    message = db.session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.id == message_id)
        .with_for_update()
        .execution_options(all_institutions=True)
    )
    if message is None or not message.is_due(now):
        return False
    config = current_app.config
    try:
        subject, text, html = render_email(message)
        channels.send_email(config, to=message.recipient, subject=subject, text=text, html=html)
    except Exception as exc:  # any failure of this attempt is recorded and retried
        _record_failure(message, exc, now)
        return False
    message.attempts += 1
    message.status = OutboxStatus.SENT
    message.sent_at = now
    message.last_error = None
    db.session.flush()
    log.info("outbox message %s (%s) sent to %s", message.id, message.template, message.recipient)
    return True


def _record_failure(message: OutboxMessage, exc: Exception, now: datetime) -> None:
    config = current_app.config
    message.attempts += 1
    message.last_error = f"{type(exc).__name__}: {exc}"[:2000]
    if message.attempts >= config["OUTBOX_MAX_ATTEMPTS"]:
        message.status = OutboxStatus.FAILED
        log.error("outbox message %s failed for good: %s", message.id, message.last_error)
    else:
        delay = config["OUTBOX_RETRY_BASE_SECONDS"] * 2 ** (message.attempts - 1)
        message.send_at = now + timedelta(seconds=delay)
        log.warning(
            "outbox message %s attempt %s failed, retry in %ss: %s",
            message.id,
            message.attempts,
            delay,
            message.last_error,
        )
        _schedule_delivery(message)
    db.session.flush()


def retry_message(message: OutboxMessage) -> None:
    """Give a failed message a fresh set of attempts, starting now (a staff action)."""
    if message.status != OutboxStatus.FAILED:
        return
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.send_at = utcnow()
    db.session.flush()
    _schedule_delivery(message)
