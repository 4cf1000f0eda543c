"""A parent opens a shared form on a phone, makes a mistake, corrects it, and sends it."""

from __future__ import annotations

from sqlalchemy import func, select

from app.contacts.models import Contact, ContactTouch
from app.extensions import db
from app.leads.models import FormSubmission, Lead
from tests.factories import make_form


def test_parent_fills_in_a_shared_form_on_a_phone(live_server, phone, institution, owner, tmp_path):
    institution.locale = "zh_CN"
    db.session.commit()
    lead_form = make_form(institution)
    link = f"{live_server}/{institution.slug}/f/{lead_form.code}?utm_source=poster&ref=staff-7"

    phone.goto(link)
    assert phone.title().startswith("Spring open day")
    # The page fits a phone: nothing wider than the viewport.
    assert phone.evaluate("document.documentElement.scrollWidth") <= 390
    phone.fill("#q-parent_name", "王芳")
    phone.fill("#q-phone", "138 0013 80")  # one digit short
    phone.fill("#q-child_name", "乐乐")
    phone.fill("#q-subject", "数学")
    phone.check("input[name=custom_1][value=Saturday]")
    phone.check("input[name=custom_2][value=Art]")
    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    assert "请输入有效的电话号码。" in phone.inner_text(".has-error")
    assert phone.input_value("#q-parent_name") == "王芳"  # nothing typed is lost
    phone.screenshot(path=str(tmp_path / "form-error.png"), full_page=True)

    phone.fill("#q-phone", "138 0013 8000")
    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/thanks")
    assert "谢谢" in phone.inner_text("h1")

    # The same parent sends it again with the number written another way.
    phone.goto(link)
    phone.fill("#q-parent_name", "王芳")
    phone.fill("#q-phone", "+86 13800138000")
    phone.fill("#q-subject", "数学")
    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/thanks")

    db.session.expire_all()
    count = lambda model: db.session.scalar(select(func.count()).select_from(model))  # noqa: E731
    assert (count(Contact), count(Lead), count(FormSubmission)) == (1, 1, 1)
    touch = db.session.scalar(select(ContactTouch))
    assert (touch.utm_source, touch.referral_code) == ("poster", "staff-7")
    contact = db.session.scalar(select(Contact))
    assert (contact.parent_name, contact.student_names) == ("王芳", "乐乐")


def test_a_form_served_from_the_cache_fetches_its_own_csrf_token(
    app, client, live_server, phone, institution, monkeypatch
):
    """With CSRF on: the kept page has no token; the browser asks for one as the parent
    starts typing, and the form goes through."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    lead_form = make_form(institution)
    path = f"/{institution.slug}/f/{lead_form.code}"
    assert client.get(path).status_code == 200  # another visitor: now the page is kept

    phone.goto(live_server + path)
    assert phone.input_value("input[name=csrf_token]") == ""  # the kept page's
    phone.fill("#q-parent_name", "王芳")
    phone.fill("#q-phone", "138 0013 8000")
    phone.fill("#q-subject", "数学")
    phone.check("input[name=consent]")
    phone.click("button[type=submit]")
    phone.wait_for_url("**/thanks")

    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(FormSubmission)) == 1


def test_a_form_sent_before_its_token_arrived_still_goes_through(
    app, client, live_server, phone, institution, monkeypatch
):
    """The token is fetched at the latest on sending (the form is filled in without a
    focus event, as a browser's autofill does, and sent at once)."""
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    lead_form = make_form(institution)
    path = f"/{institution.slug}/f/{lead_form.code}"
    client.get(path)

    phone.goto(live_server + path)
    phone.evaluate(
        """() => {
            document.querySelector('#q-parent_name').value = '王芳';
            document.querySelector('#q-phone').value = '138 0013 8000';
            document.querySelector('#q-subject').value = '数学';
            document.querySelector('input[name=consent]').checked = true;
            document.querySelector('form').requestSubmit();
        }"""
    )
    phone.wait_for_url("**/thanks")

    db.session.expire_all()
    assert db.session.scalar(select(func.count()).select_from(FormSubmission)) == 1
