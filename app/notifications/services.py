"""The outbox: queue a message in the caller's transaction, deliver it later, exactly once
per dedupe key and at least once despite lost jobs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import redis
from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from jinja2 import Template
from sqlalchemy import bindparam, delete, event, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from app import pagecache
from app.contacts import services as contact_services
from app.contacts.models import Contact
from app.db import after_commit, once_per_transaction, transaction_memo, utcnow
from app.errors import ServiceError
from app.extensions import db, redis_connection
from app.notifications import channels, kinds
from app.notifications.models import (
    Channel,
    MessageTemplate,
    OutboxMessage,
    OutboxStatus,
    ReminderSettings,
    ReminderTerms,
)

log = logging.getLogger(__name__)


_PENDING = "cohort_outbox"  # session.info: the messages the transaction queued


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
) -> None:
    """Queue a message in the caller's transaction. The transaction's messages are
    written together in one INSERT just before it commits (`_write_queued`), and a message
    whose dedupe key (per institution) is already in the outbox is left as it is, so
    callers can be retried safely. Delivery is the deliverer's (`deliver_due`)."""
    queued = db.session.info.setdefault(_PENDING, {})
    queued.setdefault(
        (institution_id, dedupe_key),
        {
            "institution_id": institution_id,
            "channel": channel.value,
            "recipient": recipient,
            "template": template,
            "context": context,
            "locale": locale,
            "dedupe_key": dedupe_key,
            "send_at": send_at or utcnow(),
            "contact_id": contact_id,
            "topic": topic,
            "status": OutboxStatus.PENDING.value,
            "attempts": 0,
            "created_at": utcnow(),
        },
    )


def queue_email(**values) -> None:
    """`queue_message` on the e-mail channel (staff and platform e-mails)."""
    queue_message(channel=Channel.EMAIL, **values)


@event.listens_for(Session, "before_commit")
def _write_queued(session: Session) -> None:
    """One INSERT for every message the transaction queued (a registration queues a
    dozen reminders), existing dedupe keys skipped; the deliverer is woken after the
    commit."""
    queued = session.info.pop(_PENDING, None)
    if not queued:
        return
    rows = list(queued.values())
    dialect = session.bind.dialect.name
    insert_ = postgresql.insert if dialect == "postgresql" else sqlite.insert
    for institution_bound, where in (
        (True, OutboxMessage.institution_id.is_not(None)),
        (False, OutboxMessage.institution_id.is_(None)),
    ):
        batch = [row for row in rows if (row["institution_id"] is not None) == institution_bound]
        if not batch:
            continue
        keys = ["institution_id", "dedupe_key"] if institution_bound else ["dedupe_key"]
        # Rows as parameters, not in the statement: its compiled form is cached whatever
        # their number, and the driver sends them as multi-row VALUES (insertmanyvalues).
        session.execute(
            insert_(OutboxMessage.__table__).on_conflict_do_nothing(
                index_elements=keys, index_where=where
            ),
            batch,
        )
    after_commit(session, wake_deliverer)


@event.listens_for(Session, "after_soft_rollback")
def _drop_queued(session: Session, previous_transaction) -> None:
    if previous_transaction.parent is None:
        session.info.pop(_PENDING, None)


WAKE = "outbox:wake"


def wake_deliverer() -> None:
    """Tell a waiting deliverer there is something to send (it looks every second
    anyway, so a lost wake-up only delays a message that long)."""
    try:
        client = redis_connection.client
        client.lpush(WAKE, 1)
        client.ltrim(WAKE, 0, 0)
    except redis.RedisError:
        pass


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


def render_parent_message(message: OutboxMessage, texts: dict | None = None) -> tuple[str, str]:
    """A parent message's subject and body; `texts` keeps the wordings looked up for a
    batch (each institution's, per kind and language)."""
    key = (message.institution_id, message.template, message.locale)
    if texts is None or key not in texts:
        subject, body, _custom = message_text(*key)
        if texts is None:
            return kinds.render(subject, body, message.context, message.locale)
        texts[key] = subject, body
    return kinds.render(*texts[key], message.context, message.locale)


def _send(message: OutboxMessage, config, senders: channels.Senders, texts: dict) -> None:
    """Render the message for its channel and hand it over; raises if delivery failed."""
    if message.template not in kinds.KINDS:  # a staff e-mail
        subject, text, html = render_email(message)
    else:
        subject, text = render_parent_message(message, texts)
        html = None
        if message.channel == Channel.EMAIL:
            with force_locale(message.locale):
                html = render_template(
                    "emails/layout.html",
                    subject=subject,
                    text=text,
                    action_url=message.context.get("link"),
                )
    message.subject, message.body = subject[:200], text
    if message.channel == Channel.EMAIL:
        senders.email(
            to=message.recipient,
            subject=subject,
            text=text,
            html=html,
            reference=_reference(message),
        )
    elif message.channel == Channel.SMS:
        signature = message.context.get("institution_name", "")
        senders.sms(
            to=message.recipient,
            text=f"【{signature}】{text}",
            reference=_reference(message),
        )
    # In-app messages need no transport: being sent is being visible on the parent's page.


def _reference(message: OutboxMessage) -> str:
    """The message's identity outside: the same if it is ever sent again."""
    return f"outbox-{message.id}.{message.institution_id or 0}"


def claim_due(now: datetime, limit: int, lease: timedelta) -> list[int]:
    """Claim up to `limit` messages due now that no deliverer holds: each is this
    deliverer's until `now + lease` (another skips it meanwhile, and takes it up after,
    should this one die). Committed at once, so the claim holds no row lock while messages
    are sent."""
    free = (OutboxMessage.claimed_until.is_(None)) | (OutboxMessage.claimed_until < now)
    due = (
        select(OutboxMessage.id)
        .where(OutboxMessage.status == OutboxStatus.PENDING, OutboxMessage.send_at <= now, free)
        .order_by(OutboxMessage.send_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .execution_options(all_institutions=True)
    )
    ids = db.session.scalars(
        update(OutboxMessage)
        .where(OutboxMessage.id.in_(due.scalar_subquery()))
        .values(claimed_until=now + lease)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    return sorted(ids)


# Claimed messages are looked at again in groups this size just before they are sent: one
# cancelled meanwhile (a lesson cancelled, a seat given up) is not sent.
_RECHECK_EVERY = 10


@dataclass
class Unfinished:
    """What a deliverer had in hand when the database went away: the records of messages
    it had already sent, and the rest of its claim. Finished first when the database is
    back, so that a blip neither sends a message twice nor holds the rest back until the
    claim's lease runs out. (A deliverer that dies loses this: its claim is taken over
    after the lease, and the one message sent but not recorded goes again.)"""

    records: list[dict] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)
    claimed_until: datetime | None = None


def deliver_due(
    batch: int = 100, lease: timedelta = timedelta(minutes=2), unfinished: Unfinished | None = None
) -> int:
    """Finish what was `unfinished`, then claim and send what is due, batch after batch,
    until nothing is; returns how many were sent. E-mail goes out over one SMTP connection
    per batch, text messages over one kept-alive HTTP connection."""
    unfinished = unfinished if unfinished is not None else Unfinished()
    sent = _finish(unfinished, lease)
    while True:
        now = utcnow()
        ids = claim_due(now, batch, lease)
        if not ids:
            return sent
        sent += _deliver_claimed(ids, now + lease, unfinished)


def _finish(unfinished: Unfinished, lease: timedelta) -> int:
    """Write the records left unwritten, then send the rest of the claim, as far as it is
    still this deliverer's (no other has taken it over since its lease ran out)."""
    with db.committed_one_by_one() as record:
        while unfinished.records:
            record(_RECORD, unfinished.records[0])
            unfinished.records.pop(0)
    if not unfinished.ids:
        return 0
    until = utcnow() + lease
    ids = db.session.scalars(
        update(OutboxMessage)
        .where(
            OutboxMessage.id.in_(unfinished.ids),
            OutboxMessage.claimed_until == unfinished.claimed_until,
        )
        .values(claimed_until=until)
        .returning(OutboxMessage.id)
        .execution_options(synchronize_session=False)
    ).all()
    db.session.commit()
    unfinished.ids, unfinished.claimed_until = [], None
    return _deliver_claimed(sorted(ids), until, unfinished) if ids else 0


def _deliver_claimed(ids: list[int], claimed_until: datetime, unfinished: Unfinished) -> int:
    """Send claimed messages that are still due, each recorded in its own commit as soon
    as it has gone (the deliverer does not wait for those commits to reach the disk,
    `run_deliverer`: a crash loses at most the record of the last sends, which then go
    again with the same Message-ID or SMS reference, as after a kill between a send and
    its commit). If the database goes away meanwhile, what is left goes to `unfinished`."""
    # Plain copies of the rows, not ORM objects: they stay as read while the commits below
    # go by, and nothing of the caller's session changes under it.
    messages = [
        SimpleNamespace(**row._mapping)
        for row in db.session.execute(
            select(*OutboxMessage.__table__.columns)
            .where(OutboxMessage.id.in_(ids))
            .order_by(OutboxMessage.id)
            .execution_options(all_institutions=True)
        )
    ]
    db.session.rollback()
    config, texts, sent, handled = current_app.config, {}, 0, 0

    def keep_unwritten(record: Callable) -> Callable:
        def writing(statement, parameters: dict) -> None:
            try:
                record(statement, parameters)
            except DBAPIError:
                unfinished.records.append(parameters)  # the message went: say so later
                raise

        return writing

    try:
        with channels.Senders(config) as senders, db.committed_one_by_one() as record:
            record = keep_unwritten(record)
            for start in range(0, len(messages), _RECHECK_EVERY):
                group = messages[start : start + _RECHECK_EVERY]
                now = utcnow()
                due = set(
                    db.session.scalars(
                        select(OutboxMessage.id)
                        .where(
                            OutboxMessage.id.in_([m.id for m in group]),
                            OutboxMessage.status == OutboxStatus.PENDING,
                            OutboxMessage.send_at <= now,
                        )
                        .execution_options(all_institutions=True)
                    )
                )
                db.session.rollback()
                for message in group:
                    try:
                        if message.id in due:
                            sent += _deliver(message, config, senders, texts, record, now)
                    finally:  # sent (or tried) and recorded, or its record kept
                        handled += 1
    except DBAPIError:
        unfinished.ids = [message.id for message in messages[handled:]]
        unfinished.claimed_until = claimed_until
        raise
    return sent


def _deliver(
    message, config, senders: channels.Senders, texts: dict, record: Callable, now: datetime
) -> bool:
    """Send one message and `record` what happened (committed at once)."""
    try:
        _send(message, config, senders, texts)
    except Exception as exc:  # any failure of this attempt is recorded and retried
        _record_failure(message, exc, now)
        sent = False
    else:
        message.attempts += 1
        message.status = OutboxStatus.SENT
        message.sent_at = now
        message.last_error = None
        log.debug(
            "outbox message %s (%s, %s) sent to %s",
            message.id,
            message.template,
            message.channel,
            message.recipient,
        )
        sent = True
    values = {f"new_{name}": getattr(message, name) for name in _RECORDED}
    record(_RECORD, {"message_id": message.id, **values})
    return sent


# What a delivery attempt records, as one statement built once (a wave runs it thousands
# of times); the claim is let go with it.
_RECORDED = ("status", "attempts", "sent_at", "send_at", "last_error", "subject", "body")
_RECORD = (
    update(OutboxMessage.__table__)
    .where(OutboxMessage.__table__.c.id == bindparam("message_id"))
    .values({**{name: bindparam(f"new_{name}") for name in _RECORDED}, "claimed_until": None})
)


def _record_failure(message: OutboxMessage, exc: Exception, now: datetime) -> None:
    """This attempt failed: try again later (doubling the wait), or give up after
    OUTBOX_MAX_ATTEMPTS (staff can send it again from the outbox page)."""
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


def retry_message(message: OutboxMessage) -> None:
    """Give a failed message a fresh set of attempts, starting now (a staff action)."""
    if message.status != OutboxStatus.FAILED:
        return
    message.status = OutboxStatus.PENDING
    message.attempts = 0
    message.send_at = utcnow()
    message.claimed_until = None
    db.session.flush()
    after_commit(db.session(), wake_deliverer)


def cancel_topic(institution_id: int, topic: str) -> int:
    """Cancel every message about `topic` that has not gone yet (those queued by this
    transaction too); return how many were in the outbox. A deliverer that has claimed
    one finds it cancelled and does nothing."""
    queued = db.session.info.get(_PENDING, {})
    for key in [k for k, row in queued.items() if row["topic"] == topic]:
        if queued[key]["institution_id"] == institution_id:
            del queued[key]
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


REMINDER_TERMS = "reminder_settings"  # the kind app.pagecache keeps the reminder terms under
_TERMS_MEMO = "reminder_terms"  # the transaction's copy (db.once_per_transaction)


def reminder_settings(institution_id: int) -> ReminderSettings:
    """The institution's reminder settings (the row, for staff to change), created with the
    defaults on first use; read once per transaction."""
    return once_per_transaction(
        db.session(),
        ("reminder_settings", institution_id),
        lambda: _reminder_settings(institution_id),
    )


def reminder_terms(institution_id: int) -> ReminderTerms:
    """The institution's reminder settings as every booked seat and parent message reads
    them, once per transaction. A request keeps them in its web process's memory while
    they stand (app.pagecache.kept_terms; `update_reminder_settings` makes them stale), so
    a rush of registrations does not read the row each time."""
    read = partial(saved_reminder_terms, institution_id)
    return once_per_transaction(
        db.session(),
        (_TERMS_MEMO, institution_id),
        lambda: pagecache.kept_terms(institution_id, REMINDER_TERMS, "", read),
    )


def saved_reminder_terms(institution_id: int) -> ReminderTerms:
    """The reminder settings as the database has them now (the settings page shows these,
    never a copy kept in memory), without creating the row."""
    return ReminderTerms.of(_settings_row(institution_id))


def _settings_row(institution_id: int) -> ReminderSettings | None:
    return db.session.scalar(
        select(ReminderSettings).where(ReminderSettings.institution_id == institution_id)
    )


def _reminder_settings(institution_id: int) -> ReminderSettings:
    settings = _settings_row(institution_id)
    if settings is None:
        settings = ReminderSettings(institution_id=institution_id)
        try:
            with db.session.begin_nested():
                db.session.add(settings)
        except IntegrityError:  # created by a concurrent request
            return _reminder_settings(institution_id)
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
    # This transaction goes on with the new terms; every process's kept copy is dropped
    # once they are committed (until then, kept_terms reads them without keeping them).
    transaction_memo(db.session())[(_TERMS_MEMO, institution_id)] = ReminderTerms.of(settings)
    pagecache.changed(institution_id, REMINDER_TERMS)
    return settings


def reminder_times(
    settings: ReminderTerms, starts_at: datetime, zone: ZoneInfo, now: datetime
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
) -> None:
    """Queue a parent message of `kind` on each of the institution's channels the family
    can be reached on (e-mail only with an address, SMS only with a gateway), in the
    family's language, with a link to their own page."""
    if channels_ is None:
        channels_ = list(reminder_terms(institution.id).channels)
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
    for channel in Channel:
        if channel.value not in channels_ or not recipients[channel]:
            continue
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
