"""The outbox: queue a message in the caller's transaction, deliver it later, exactly once
per dedupe key and at least once despite lost jobs."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from jinja2 import Template
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from app.contacts import services as contact_services
from app.contacts.models import Contact
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.jobs import enqueue_after_commit
from app.notifications import channels, kinds
from app.notifications.models import (
    Channel,
    MessageTemplate,
    OutboxMessage,
    OutboxStatus,
    ReminderSettings,
)

log = logging.getLogger(__name__)


def queue_message(
    *,
    institution_id: int | None,
    channel: Channel,
    recipient: str,
    template: str,
    context: dict,
    locale: str,
    dedupe_key: str,
    send_at: datetime | None = None,
    contact_id: int | None = None,
    topic: str | None = None,
) -> OutboxMessage:
    """Write a message to the outbox and enqueue its delivery after the commit.

    A message with the same dedupe key (per institution) is returned as it is instead of
    being queued twice, so callers can be retried safely.
    """
    existing = _find(institution_id, dedupe_key)
    if existing is not None:
        return existing
    message = OutboxMessage(
        institution_id=institution_id,
        channel=channel,
        recipient=recipient,
        template=template,
        context=context,
        locale=locale,
        dedupe_key=dedupe_key,
        send_at=send_at or utcnow(),
        contact_id=contact_id,
        topic=topic,
    )
    try:
        with db.session.begin_nested():
            db.session.add(message)
    except IntegrityError:  # a concurrent request queued the same message first
        return _find(institution_id, dedupe_key)
    _schedule_delivery(message)
    return message


def queue_email(**values) -> OutboxMessage:
    """`queue_message` on the e-mail channel (staff and platform e-mails)."""
    return queue_message(channel=Channel.EMAIL, **values)


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
    at = message.send_at if message.send_at > utcnow() else None
    enqueue_after_commit(*delivery_job(message), job_id=message.job_id, at=at)


def delivery_job(message: OutboxMessage) -> tuple:
    """The job that delivers `message` and its arguments: an institution's message is
    delivered inside its institution, a platform e-mail (a password reset) outside any."""
    if message.institution_id is None:
        return ("notifications.deliver_platform_message", message.id)
    return ("notifications.deliver_message", message.institution_id, message.id)


def render_email(message: OutboxMessage) -> tuple[str, str, str]:
    """Subject, plain text and HTML of a staff or platform e-mail (a file template in
    templates/emails/), in the message's own language."""
    with force_locale(message.locale):
        env = current_app.jinja_env
        template: Template = env.get_template(f"emails/{message.template}.txt")
        context = template.new_context(dict(message.context))
        subject = "".join(template.blocks["subject"](context)).strip()
        text = "".join(template.blocks["body"](context)).strip() + "\n"
        html = render_template("emails/layout.html", subject=subject, text=text, **message.context)
    return subject, text, html


def message_text(institution_id: int, kind: str, locale: str) -> tuple[str, str, bool]:
    """The subject and body of a parent message kind in a language: the institution's own
    wording if it has one, else the default. The flag says which."""
    custom = db.session.scalar(
        select(MessageTemplate)
        .where(
            MessageTemplate.institution_id == institution_id,
            MessageTemplate.kind == kind,
            MessageTemplate.locale == locale,
        )
        .execution_options(all_institutions=True)
    )
    if custom is not None:
        return custom.subject, custom.body, True
    return (*kinds.default_text(kind, locale), False)


def render_parent_message(message: OutboxMessage) -> tuple[str, str]:
    subject, body, _custom = message_text(message.institution_id, message.template, message.locale)
    return kinds.render(subject, body, message.context, message.locale)


def _send(message: OutboxMessage, config) -> None:
    """Render the message for its channel and hand it over; raises if delivery failed."""
    if message.template not in kinds.KINDS:
        subject, text, html = render_email(message)
        channels.send_email(config, to=message.recipient, subject=subject, text=text, html=html)
        message.subject, message.body = subject[:200], text
        return
    subject, text = render_parent_message(message)
    message.subject, message.body = subject[:200], text
    if message.channel == Channel.EMAIL:
        with force_locale(message.locale):
            html = render_template(
                "emails/layout.html",
                subject=subject,
                text=text,
                action_url=message.context.get("link"),
            )
        channels.send_email(config, to=message.recipient, subject=subject, text=text, html=html)
    elif message.channel == Channel.SMS:
        signature = message.context.get("institution_name", "")
        channels.send_sms(
            config,
            to=message.recipient,
            text=f"【{signature}】{text}",
            reference=message.dedupe_key,
        )
    # In-app messages need no transport: being sent is being visible on the parent's page.


def deliver_message(institution_id: int | None, message_id: int, now: datetime | None = None):
    """Send one outbox message of the institution (None: a platform message) if it is
    still due; return True if it was sent now.

    The row is locked for the whole attempt, so two deliveries of the same message (the
    scheduled job and the sweeper's) run one after the other, and the second finds it sent.
    """
    now = now or utcnow()
    owner = (
        OutboxMessage.institution_id.is_(None)
        if institution_id is None
        else OutboxMessage.institution_id == institution_id
    )
    message = db.session.scalar(
        select(OutboxMessage)
        .where(OutboxMessage.id == message_id, owner)
        .with_for_update()
        .execution_options(all_institutions=True)
    )
    if message is None or not message.is_due(now):
        return False
    try:
        _send(message, current_app.config)
    except Exception as exc:  # any failure of this attempt is recorded and retried
        _record_failure(message, exc, now)
        return False
    message.attempts += 1
    message.status = OutboxStatus.SENT
    message.sent_at = now
    message.last_error = None
    db.session.flush()
    log.info(
        "outbox message %s (%s, %s) sent to %s",
        message.id,
        message.template,
        message.channel,
        message.recipient,
    )
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


def cancel_topic(institution_id: int, topic: str) -> int:
    """Cancel every message about `topic` that has not gone yet; return how many. A
    delivery job that still fires finds its message cancelled and does nothing."""
    result = db.session.execute(
        update(OutboxMessage)
        .where(
            OutboxMessage.institution_id == institution_id,
            OutboxMessage.topic == topic,
            OutboxMessage.status == OutboxStatus.PENDING,
        )
        .values(status=OutboxStatus.CANCELLED)
        .execution_options(synchronize_session="fetch")
    )
    return result.rowcount


# --- parent messages -------------------------------------------------------------------------


def reminder_settings(institution_id: int) -> ReminderSettings:
    """The institution's reminder settings, created with the defaults on first use."""
    settings = db.session.scalar(
        select(ReminderSettings).where(ReminderSettings.institution_id == institution_id)
    )
    if settings is None:
        settings = ReminderSettings(institution_id=institution_id)
        try:
            with db.session.begin_nested():
                db.session.add(settings)
        except IntegrityError:  # created by a concurrent request
            return reminder_settings(institution_id)
    return settings


def update_reminder_settings(
    institution_id: int, *, morning_time: str | None, minutes_before: list[int], channels: list
) -> ReminderSettings:
    """New reminder settings; they apply to seats booked from now on (already scheduled
    reminders keep their times)."""
    settings = reminder_settings(institution_id)
    settings.morning_time = morning_time
    settings.minutes_before = sorted(set(minutes_before), reverse=True)
    settings.channels = [c.value for c in Channel if c.value in set(channels)]
    db.session.flush()
    return settings


def reminder_times(
    settings: ReminderSettings, starts_at: datetime, zone: ZoneInfo, now: datetime
) -> list[tuple[str, datetime]]:
    """(key, UTC instant) of each reminder for a lesson starting at `starts_at`: the
    morning one on the lesson's local day (skipped if the lesson starts before it), then
    the ones a number of minutes before. Instants already past are left out: a family
    registering an hour before class gets the ten-minute reminder only."""
    times = []
    if settings.morning_time:
        hour, minute = (int(part) for part in settings.morning_time.split(":"))
        local_day = starts_at.astimezone(zone).date()
        morning = datetime.combine(local_day, time(hour, minute), tzinfo=zone).astimezone(UTC)
        if morning < starts_at:
            times.append((f"day{hour:02d}{minute:02d}", morning))
    for minutes in settings.minutes_before:
        times.append((f"m{minutes}", starts_at - timedelta(minutes=minutes)))
    return sorted((item for item in times if item[1] > now), key=lambda item: item[1])


def notify_contact(
    institution,
    contact: Contact,
    kind: str,
    context: dict,
    *,
    dedupe_key: str,
    send_at: datetime | None = None,
    topic: str | None = None,
    channels_: list[str] | None = None,
) -> list[OutboxMessage]:
    """Queue a parent message of `kind` on each of the institution's channels the family
    can be reached on (e-mail only with an address, SMS only with a gateway), in the
    family's language, with a link to their own page."""
    if channels_ is None:
        channels_ = reminder_settings(institution.id).channels
    locale = contact.locale or institution.locale
    context = {
        "institution_name": institution.name,
        "parent_name": contact.parent_name,
        "timezone": institution.timezone,
        "link": contact_services.parent_page_url(institution, contact),
        **context,
    }
    recipients = {
        Channel.EMAIL: contact.email,
        Channel.SMS: contact.phone if channels.sms_configured(current_app.config) else None,
        Channel.INAPP: f"contact:{contact.id}",
    }
    messages = []
    for channel in Channel:
        if channel.value not in channels_ or not recipients[channel]:
            continue
        messages.append(
            queue_message(
                institution_id=institution.id,
                channel=channel,
                recipient=recipients[channel],
                template=kind,
                context=context,
                locale=locale,
                dedupe_key=f"{dedupe_key}:{channel.value}",
                send_at=send_at,
                contact_id=contact.id,
                topic=topic,
            )
        )
    return messages


def save_message_text(institution_id: int, kind: str, locale: str, subject: str, body: str):
    """Store the institution's wording of a message kind; raises ServiceError if it does
    not render."""
    error = kinds.check(subject, body, locale)
    if error:
        raise ServiceError(
            _l("This text cannot be used: %(error)s", error=error), field="body", code="template"
        )
    custom = db.session.scalar(
        select(MessageTemplate).where(
            MessageTemplate.institution_id == institution_id,
            MessageTemplate.kind == kind,
            MessageTemplate.locale == locale,
        )
    )
    if custom is None:
        custom = MessageTemplate(institution_id=institution_id, kind=kind, locale=locale)
        db.session.add(custom)
    custom.subject, custom.body = subject, body
    db.session.flush()
    return custom


def reset_message_text(institution_id: int, kind: str, locale: str) -> None:
    db.session.execute(
        delete(MessageTemplate).where(
            MessageTemplate.institution_id == institution_id,
            MessageTemplate.kind == kind,
            MessageTemplate.locale == locale,
        )
    )
