"""Institutions reword parent messages per kind and language, with a preview."""

from __future__ import annotations

from sqlalchemy import select

from app.extensions import db
from app.jobs import run_burst
from app.notifications.models import MessageTemplate
from tests.factories import make_course
from tests.helpers import login, register

EDIT = "/staff/{slug}/notifications/templates/registration_confirmed/en"


def test_preview_renders_the_sample_without_saving(owner_client, institution):
    response = owner_client.post(
        EDIT.format(slug=institution.slug),
        data={
            "subject": "Hi {{ parent_name }}",
            "body": "{{ child_name }} at {{ lesson_time }}",
            "action": "preview",
        },
    )
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert "Hi 王芳" in page and "乐乐 at Sat 5 Dec, 19:00" in page
    assert db.session.scalars(select(MessageTemplate)).all() == []


def test_a_broken_or_unknown_variable_is_refused(owner_client, institution):
    for body in ["{{ child_name ", "Hello {{ childname }}", "{{ ''.__class__ }}"]:
        response = owner_client.post(
            EDIT.format(slug=institution.slug),
            data={"subject": "Hi", "body": body, "action": "save"},
        )
        assert response.status_code == 422, body
        assert "This text cannot be used" in response.get_data(as_text=True)
    assert db.session.scalars(select(MessageTemplate)).all() == []


def test_the_institutions_wording_is_what_families_receive(client, institution, owner, mail_server):
    login(client, owner)
    response = client.post(
        EDIT.format(slug=institution.slug),
        data={
            "subject": "Welcome aboard, {{ child_name }}!",
            "body": "See you soon.\n{{ lessons }}",
            "action": "save",
        },
    )
    assert response.status_code == 302
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    assert mail["Subject"] == "Welcome aboard, Leo!"

    reset = client.post(f"{EDIT.format(slug=institution.slug)}/reset")
    assert reset.status_code == 302
    assert db.session.scalars(select(MessageTemplate)).all() == []


def test_reminder_settings_change_the_offsets_and_channels(owner_client, institution):
    from app.notifications.models import ReminderSettings

    url = f"/staff/{institution.slug}/notifications/reminders"
    bad = owner_client.post(
        url, data={"morning_time": "8am", "minutes_before": "sixty", "channels": []}
    )
    assert bad.status_code == 422
    ok = owner_client.post(
        url, data={"morning_time": "07:30", "minutes_before": "120，15", "channels": ["email"]}
    )
    assert ok.status_code == 302
    settings = db.session.scalar(select(ReminderSettings))
    assert (settings.morning_time, settings.minutes_before, settings.channels) == (
        "07:30",
        [120, 15],
        ["email"],
    )


def test_the_transaction_that_saves_reminder_settings_goes_on_with_them(app, institution):
    """Reminder terms are read once per transaction (and kept in a web process's memory);
    the transaction that changes them goes on with its change, not the copy it read."""
    from app.notifications.models import ReminderTerms
    from app.notifications.services import reminder_terms, update_reminder_settings

    with app.test_request_context(f"/{institution.slug}/"):
        assert reminder_terms(institution.id) == ReminderTerms.of(None)  # the defaults
        update_reminder_settings(
            institution.id, morning_time=None, minutes_before=[30], channels=["email"]
        )
        assert reminder_terms(institution.id) == ReminderTerms(None, (30,), ("email",))
