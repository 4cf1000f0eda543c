"""A parent fills in a shared form: one contact, one lead, attributed, and staff told."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from app.contacts.models import Contact, ContactTouch, SourceKind
from app.contacts.services import Touch
from app.counters import sweep_counts
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.jobs import run_burst
from app.leads import services as leads
from app.leads.models import FormSourceStat, FormSubmission, Lead, Stage
from app.pagecache import in_memory
from app.tenancy import bound
from tests.factories import make_form
from tests.helpers import statements

ANSWERS = {
    "parent_name": "Wang Fang",
    "phone": "138 0013 8000",
    "child_name": "Leo",
    "child_grade": "Grade 3",
    "subject": "Maths",
    "custom_1": "Saturday",
    "custom_2": ["Maths", "Art"],
    "consent": "y",
}


def url(institution, lead_form, query=""):
    return f"/{institution.slug}/f/{lead_form.code}{query}"


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_two_submissions_in_two_phone_formats_are_one_family_and_one_lead(
    client, institution, owner, lead_form, mail_server
):
    link = url(institution, lead_form, "?ref=staff-1&utm_source=wechat&utm_medium=group")
    page = client.get(link, headers={"Referer": "https://mp.weixin.qq.com/s/abc"})
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Spring open day" in html
    # The page carries the first visit's Referer into the POST, as a browser sends it back.
    referrer = re.search(r'id="referrer" name="referrer" type="hidden" value="([^"]*)"', html)
    first = client.post(link, data={**ANSWERS, "referrer": referrer.group(1)})
    assert first.status_code == 302 and first.headers["Location"].endswith("/thanks")
    second = client.post(link, data={**ANSWERS, "phone": "+86 13800138000"})
    assert second.status_code == 302

    assert (count(Contact), count(Lead), count(FormSubmission)) == (1, 1, 1)
    contact = db.session.scalar(select(Contact))
    assert contact.phone == "+8613800138000" and contact.student_names == "Leo"
    assert contact.consent_at is not None
    touch = db.session.scalar(select(ContactTouch))
    assert (touch.referral_code, touch.utm_source, touch.utm_medium) == (
        "staff-1",
        "wechat",
        "group",
    )
    assert touch.referrer == "https://mp.weixin.qq.com/s/abc"
    submission = db.session.scalar(select(FormSubmission))
    assert submission.answers["custom_2"] == ["Maths", "Art"]
    assert submission.source == "wechat"
    lead = db.session.scalar(select(Lead))
    assert lead.stage == Stage.NEW and lead.form_id == lead_form.id

    run_burst()
    [mail] = mail_server.to(owner.email)  # no owner yet: the managers are told, once
    assert "Wang Fang" in mail["Subject"]


def test_a_later_submission_adds_a_submission_but_not_a_second_lead(client, institution, lead_form):
    client.post(url(institution, lead_form), data=ANSWERS)
    with time_machine.travel(utcnow() + timedelta(minutes=11)):
        client.post(url(institution, lead_form), data=ANSWERS)
    assert (count(Contact), count(Lead), count(FormSubmission)) == (1, 1, 2)


def test_bad_answers_are_field_errors_and_write_nothing(client, institution, lead_form):
    cases = [
        {"phone": "12345"},
        {"parent_name": ""},
        {"subject": ""},
        {"custom_1": "Monday"},
        {"custom_2": ["Maths", "Cooking"]},
        {"parent_name": "x" * 101},
        {"consent": ""},
    ]
    for n, change in enumerate(cases):
        response = client.post(
            url(institution, lead_form),
            data={**ANSWERS, **change},
            environ_base={"REMOTE_ADDR": f"10.9.0.{n}"},
        )
        assert response.status_code == 422, change
        assert "Please correct the fields marked below." in response.get_data(as_text=True)
    assert (count(Contact), count(Lead), count(FormSubmission)) == (0, 0, 0)


def test_every_mistake_is_named_at_once_the_phone_number_too(client, institution, lead_form):
    """A missing answer and a phone number that is not one are both marked on the first
    try, not the phone only once the answer is mended."""
    response = client.post(
        url(institution, lead_form), data={**ANSWERS, "subject": "", "phone": "12345"}
    )
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "This field is required." in page and "Enter a valid phone number." in page
    assert count(Contact) == 0


def test_answers_are_escaped_where_staff_read_them(client, owner_client, institution, lead_form):
    client.post(
        url(institution, lead_form), data={**ANSWERS, "parent_name": "<script>alert(1)</script>"}
    )
    page = owner_client.get(f"/staff/{institution.slug}/forms/{lead_form.id}")
    text = page.get_data(as_text=True)
    assert "<script>alert(1)</script>" not in text and "&lt;script&gt;" in text


def test_the_honeypot_thanks_a_bot_and_keeps_nothing(client, institution, lead_form):
    response = client.post(url(institution, lead_form), data={**ANSWERS, "website": "spam"})
    assert response.status_code == 200 and "Thank you!" in response.get_data(as_text=True)
    assert count(FormSubmission) == 0 and count(Contact) == 0


def test_closed_past_date_and_full_forms_accept_nothing(client, institution, owner):
    closed = make_form(institution, is_open=False)
    past = make_form(institution, closes_at=utcnow() - timedelta(minutes=1))
    full = make_form(institution, submission_cap=1)
    assert client.post(url(institution, full), data=ANSWERS).status_code == 302
    for lead_form, text in (
        (closed, "no longer taking answers"),
        (past, "no longer taking answers"),
        (full, "reached its limit"),
    ):
        page = client.get(url(institution, lead_form))
        assert page.status_code == 410 and text in page.get_data(as_text=True)
        response = client.post(
            url(institution, lead_form), data={**ANSWERS, "phone": "13900139000"}
        )
        assert response.status_code == 410
    assert count(FormSubmission) == 1


def test_submissions_are_rate_limited_per_address(client, institution, lead_form):
    statuses = [
        client.post(
            url(institution, lead_form), data={**ANSWERS, "phone": f"1390013{n:04d}"}
        ).status_code
        for n in range(11)
    ]
    assert statuses[:10] == [302] * 10 and statuses[10] == 429


def test_views_and_submissions_are_counted_by_source(client, owner_client, institution, lead_form):
    for _ in range(3):
        client.get(url(institution, lead_form, "?utm_source=poster"))
    client.get(url(institution, lead_form))
    client.post(url(institution, lead_form, "?utm_source=poster"), data=ANSWERS)
    db.session.refresh(lead_form)
    # Views are counted in Redis; an uncapped form's submissions are recounted with them,
    # so a busy form's row is not written (and locked) by every submission.
    assert (lead_form.view_count, lead_form.submission_count) == (0, 0)
    in_memory.add_counts()  # what each web process does every COUNTS_ADDED_EVERY
    assert sweep_counts() == 1  # what the scheduler runs every COUNTER_INTERVAL_SECONDS
    run_burst()
    db.session.refresh(lead_form)
    assert (lead_form.view_count, lead_form.submission_count) == (4, 1)
    stats = {s.source: (s.views, s.submissions) for s in db.session.scalars(select(FormSourceStat))}
    assert stats == {"poster": (3, 1), "direct": (1, 0)}
    page = owner_client.get(f"/staff/{institution.slug}/forms/{lead_form.id}")
    assert "25.0%" in page.get_data(as_text=True)


def test_unknown_form_code_is_404(client, institution, lead_form):
    assert client.get(f"/{institution.slug}/f/nope").status_code == 404
    assert client.get(f"/other-school/f/{lead_form.code}").status_code == 404


def test_a_second_child_of_the_family_is_added_not_taken_for_a_repeat(
    client, institution, lead_form
):
    link = url(institution, lead_form)
    assert client.post(link, data=ANSWERS).status_code == 302
    assert client.post(link, data=ANSWERS).status_code == 302  # the same child: a repeat
    assert client.post(link, data={**ANSWERS, "child_name": "Mia"}).status_code == 302

    contact = db.session.scalar(select(Contact))
    assert sorted(s.name for s in contact.students) == ["Leo", "Mia"]
    assert (count(FormSubmission), count(Lead)) == (2, 1)


def test_a_form_is_decided_on_terms_kept_in_memory_until_staff_change_it(client, institution):
    """A crowd's submissions do not read the form's row (its terms are kept in each web
    process while its version stands), and staff closing it is heard on the next one."""
    lead_form = make_form(institution)
    path = url(institution, lead_form)
    assert client.post(path, data=ANSWERS).status_code == 302
    with statements() as sent:
        again = {**ANSWERS, "phone": "13900139000"}
        assert client.post(path, data=again).status_code == 302
    assert [s for s in sent if "FROM lead_forms" in s] == []

    changed = {
        name: getattr(lead_form, name)
        for name in ("title", "intro", "fields", "consent_text", "thank_you_message")
        + ("redirect_url", "closes_at", "submission_cap")
    }
    with bound(institution):
        leads.save_form(institution, lead_form, **changed, is_open=False)
        db.session.commit()
    late = {**ANSWERS, "phone": "13700137000"}
    assert client.post(path, data=late).status_code == 410
    assert count(FormSubmission) == 2


def test_a_cap_staff_lower_is_obeyed_by_terms_read_before_it(client, institution):
    """Terms kept a moment before staff lower the cap still count against the new cap:
    the database's, the last statement of the submission."""
    lead_form = make_form(institution, submission_cap=5)
    assert client.post(url(institution, lead_form), data=ANSWERS).status_code == 302
    with bound(institution):
        read_before = leads.form_terms(institution, lead_form.code)
        assert read_before.submission_cap == 5
        changed = {
            name: getattr(lead_form, name)
            for name in ("title", "intro", "fields", "consent_text", "thank_you_message")
            + ("redirect_url", "is_open", "closes_at")
        }
        leads.save_form(institution, lead_form, **changed, submission_cap=1)
        db.session.commit()
        with pytest.raises(ServiceError):
            leads.submit_form(
                institution,
                read_before,
                {**ANSWERS, "phone": "13900139000"},
                consent_given=True,
                touch=Touch(kind=SourceKind.FORM, ref=lead_form.code),
            )
        db.session.rollback()
    assert count(FormSubmission) == 1
