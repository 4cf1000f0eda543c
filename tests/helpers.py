"""Helpers the tests share: acting as a parent or a member of staff, reading what the app
wrote, paying like Stripe.js, and racing real parallel requests. (Factories are in
tests/factories.py; tests import from these two modules only, never from a conftest.)"""

from __future__ import annotations

import io
import os
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from urllib.parse import parse_qs, urlsplit

import stripe
from flask import current_app
from PIL import Image
from sqlalchemy import create_engine, delete, event, func, select, text
from sqlalchemy.pool import NullPool

from app.accounts.models import Role, User
from app.campaigns.models import GroupBuy, Team, TeamMember
from app.courses.models import Course, Lesson
from app.devtools.mailsink import body_text
from app.extensions import db
from app.institutions.models import Institution
from app.notifications.models import Channel, OutboxMessage, OutboxStatus
from tests.factories import PASSWORD, make_institution, make_member

# Races that need real row locks run only against PostgreSQL (SQLite has one writer at a
# time, which serialises them away).
ON_POSTGRESQL = bool(os.environ.get("TEST_DATABASE_URL"))
PHONE = {  # a phone-sized browser context for Playwright
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}


def count(model, *where) -> int:
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def login(client, user: User, password: str = PASSWORD):
    response = client.post("/login", data={"email": user.email, "password": password})
    assert response.status_code == 302, response.get_data(as_text=True)
    return response


def link_in(message) -> str:
    """The path of the first link to our site in an e-mail's text part."""
    match = re.search(r"http://localhost(/\S+)", body_text(message))
    assert match, body_text(message)
    return match.group(1)


def offered_group_link(message, title: str) -> tuple[str, str]:
    """The group link a confirmation e-mail offers ("…group “<title>”: <link>"): the path
    of the family's own sign-in link, and the page it goes on to (its `next`)."""
    match = re.search(rf"group “{re.escape(title)}”: http://localhost(/\S+)", body_text(message))
    assert match, body_text(message)
    parts = urlsplit(match.group(1))
    return f"{parts.path}?{parts.query}", parse_qs(parts.query)["next"][0]


def png_bytes(size=(64, 64)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (15, 118, 110)).save(buffer, format="PNG")
    return buffer.getvalue()


# --- a family on the course page -------------------------------------------------------------

FAMILY = {
    "parent_name": "Wang Fang",
    "phone": "138 0013 8000",
    "email": "wang.fang@example.com",
    "student_name": "Leo",
    "student_grade": "Grade 3",
    "consent": "y",
}


def register(
    client,
    institution,
    course: Course,
    lessons: list[Lesson] | None = None,
    headers: dict | None = None,
    **family,
):
    data = {**FAMILY, **family}
    data["lessons"] = [lesson.id for lesson in (course.lessons if lessons is None else lessons)]
    return client.post(f"/{institution.slug}/c/{course.code}", data=data, headers=headers)


def reminders(institution, channel: Channel = Channel.EMAIL, status=OutboxStatus.PENDING):
    return list(
        db.session.scalars(
            select(OutboxMessage)
            .where(
                OutboxMessage.institution_id == institution.id,
                OutboxMessage.template == "lesson_reminder",
                OutboxMessage.channel == channel,
                OutboxMessage.status == status,
            )
            .order_by(OutboxMessage.send_at)
        )
    )


# --- parents opening and joining teams -------------------------------------------------------


def parent(n: int, **overrides) -> dict:
    return {
        "parent_name": f"Parent {n}",
        "phone": f"1390013{n:04d}",
        "student_name": f"Child {n}",
        "email": f"parent{n}@example.com",
        "consent": "y",
        "card_number": VISA,
        "card_expiry": "12/30",
        "card_cvc": "123",
        **overrides,
    }


def open_team(client, institution, group_buy: GroupBuy, n: int = 1, **overrides):
    return client.post(
        f"/{institution.slug}/gb/{group_buy.code}",
        data=parent(n, **overrides),
        environ_base={"REMOTE_ADDR": f"10.40.{n // 250}.{n % 250}"},
    )


def join_team(client, institution, group_buy: GroupBuy, team: Team, n: int, **overrides):
    return client.post(
        f"/{institution.slug}/gb/{group_buy.code}/t/{team.code}",
        data=parent(n, **overrides),
        environ_base={"REMOTE_ADDR": f"10.40.{n // 250}.{n % 250}"},
    )


def only_team(group_buy: GroupBuy) -> Team:
    return db.session.scalars(select(Team).where(Team.group_buy_id == group_buy.id)).one()


def members(team: Team) -> list[TeamMember]:
    return list(
        db.session.scalars(
            select(TeamMember).where(TeamMember.team_id == team.id).order_by(TeamMember.id)
        )
    )


# --- paying: test cards, the test's own view of localstripe, what Stripe.js does ------------------

VISA = "4242 4242 4242 4242"
DECLINED = "4000 0000 0000 0341"  # accepted as a card, declined when charged


def stripe_client() -> stripe.StripeClient:
    """The test's own view of localstripe, to check what really happened there."""
    return stripe.StripeClient(
        current_app.config["STRIPE_SECRET_KEY"],
        base_addresses={"api": current_app.config["STRIPE_API_BASE"]},
    )


def intent(payment_intent_id: str):
    return stripe_client().v1.payment_intents.retrieve(payment_intent_id)


def captures_of(payment_intent_id: str) -> int:
    """How many times localstripe moved money for this PaymentIntent's charge: each capture
    writes one balance transaction, so a double capture would show as 2."""
    charge = intent(payment_intent_id).to_dict()["latest_charge"]
    charge_id = charge["id"] if isinstance(charge, dict) else charge
    transactions = stripe_client().v1.balance_transactions.list(params={"limit": 100})
    return sum(1 for txn in transactions.auto_paging_iter() if txn.to_dict()["source"] == charge_id)


def refunds_of(payment_intent_id: str) -> int:
    """How many refunds localstripe made of this PaymentIntent's charge (each refund writes
    one; localstripe refunds as often as it is asked, so a double refund would show as 2)."""
    refunds = stripe_client().v1.refunds.list(params={"payment_intent": payment_intent_id})
    return sum(1 for _refund in refunds.auto_paging_iter())


def pay_like_stripe_js(payment_intent_id: str, number: str = VISA) -> dict:
    """What the Payment Element does in the parent's browser: attach the card to the
    PaymentIntent and confirm it at Stripe. (localstripe serves no Payment Element, so the
    test makes the same calls to it that Stripe.js would make.)"""
    client = stripe_client()
    method = client.v1.payment_methods.create(
        params={
            "type": "card",
            "card": {
                "number": number.replace(" ", ""),
                "exp_month": 12,
                "exp_year": 2030,
                "cvc": "123",
            },
        }
    )
    client.v1.payment_intents.update(payment_intent_id, params={"payment_method": method.id})
    try:
        return client.v1.payment_intents.confirm(payment_intent_id).to_dict()
    except stripe.CardError:
        return intent(payment_intent_id).to_dict()


# --- real parallel requests (tests marked `committed`) ---------------------------------------
#
# Most tests run inside one rolled-back transaction, which cannot show what happens when
# two requests race. A test marked `@pytest.mark.committed` runs without it (see conftest),
# so every request (each in its own thread, app context and database connection) commits
# for real; `committed_data` then deletes the institutions the test made (the schema
# cascades) and the users it made.


def committed_institution(made: dict, **options) -> Institution:
    """An institution (make_institution's options) and its owner, committed for a test that
    needs real commits (inside `committed_data`, which deletes them afterwards)."""
    institution = make_institution(**options)
    db.session.commit()
    made["institutions"].append(institution.id)
    made["users"].append(make_member(institution, Role.OWNER).id)
    return institution


@contextmanager
def committed_data():
    made: dict[str, list[int]] = {"institutions": [], "users": []}
    try:
        yield made
    finally:
        db.session.remove()
        with db.engine.begin() as connection:
            if made["institutions"]:
                connection.execute(
                    delete(Institution.__table__).where(
                        Institution.__table__.c.id.in_(made["institutions"])
                    )
                )
            if made["users"]:
                connection.execute(
                    delete(User.__table__).where(User.__table__.c.id.in_(made["users"]))
                )


def run_in_parallel(count: int, work: Callable[[int], object]) -> list:
    """Start `count` threads at the same instant, each calling work(i); return the results
    in order (an exception is returned, not raised)."""
    barrier = threading.Barrier(count)
    results: list = [None] * count

    def run(i: int) -> None:
        barrier.wait()
        try:
            results[i] = work(i)
        except Exception as exc:  # reported to the test, which asserts on it
            results[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return results


@contextmanager
def database_down_from(first: str):
    """The database goes away in the middle of the work in the block: from the first
    statement the app sends that holds `first` (a part of a WITH, say), PostgreSQL drops
    the connection of every statement (pg_terminate_backend, as in a restart), until the
    block ends."""
    down: list[str] = []
    killer = create_engine(db.engine.url, poolclass=NullPool)

    def drop(conn, cursor, statement, *args) -> None:
        if down or first in statement:
            down.append(statement)
            pid = conn.connection.dbapi_connection.info.backend_pid
            with killer.connect() as other:
                other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})

    event.listen(db.engine, "before_cursor_execute", drop)
    try:
        yield down
    finally:
        event.remove(db.engine, "before_cursor_execute", drop)
        killer.dispose()


@contextmanager
def statements():
    """The statements sent to the database inside the block, as a list of SQL texts."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany):
        sent.append(statement)

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", record)


def flask_dispatches(app, monkeypatch) -> list:
    """A list that grows by one for every request the Flask app itself dispatches (not
    one answered in front of it, by app.pagecache's middleware)."""
    dispatched: list = []
    dispatch = app.full_dispatch_request
    monkeypatch.setattr(app, "full_dispatch_request", lambda: dispatched.append(1) or dispatch())
    return dispatched


def wait_until(condition, seconds: float = 5.0) -> bool:
    """Whether `condition()` became true within `seconds` (another thread or process is
    doing it: a listener, a notice)."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def staff_base(institution) -> str:
    """The start of the institution's staff pages."""
    return f"/staff/{institution.slug}"
