"""Staff pages in a browser, in Chinese: the leads board fits a desktop and moves a card
dropped on another column (and puts back one the server refuses), the roll call's "all
present", and a date field that shows its calendar in Chinese whatever the browser's own
language.

Screenshots go to $COHORT_SCREENSHOTS when it is set (else the test's temporary folder):
board-1366x850.png, board-390x844.png, roll-call-390x844.png, datepicker-zh-1366x850.png.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from app.contacts import services as contacts
from app.contacts.models import SourceKind
from app.courses.models import Attendance, Enrolment, Seat
from app.extensions import db
from app.leads import services as leads
from app.leads.models import Lead, Stage
from app.tenancy import bound
from tests.factories import PASSWORD, make_course
from tests.helpers import PHONE, register

DESKTOP = {"viewport": {"width": 1366, "height": 850}}
STAGES = [  # (parent, stage): a few families along the pipeline
    ("王芳", Stage.NEW),
    ("李娜", Stage.NEW),
    ("张伟", Stage.CONTACTED),
    ("刘洋", Stage.TRIAL_BOOKED),
    ("陈静", Stage.TRIAL_ATTENDED),
    ("杨敏", Stage.ENROLLED),
    ("赵磊", Stage.LOST),
]


@pytest.fixture
def shots(tmp_path) -> Path:
    folder = Path(os.environ.get("COHORT_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def zh_institution(institution):
    institution.locale = "zh_CN"
    db.session.commit()
    return institution


def seed_leads(institution, owner) -> dict[str, Lead]:
    found = {}
    with bound(institution):
        for n, (name, stage) in enumerate(STAGES):
            contact, _ = contacts.find_or_create_contact(
                institution,
                phone=f"1370000{n:04d}",
                details=contacts.ContactDetails(parent_name=name),
                touch=contacts.Touch(SourceKind.FORM, "open-day"),
            )
            lead = leads.create_lead(institution, contact)
            if stage != Stage.NEW:
                reason = leads.lost_reason_names(institution)[0] if stage == Stage.LOST else None
                leads.move_lead(lead, stage, owner, lost_reason=reason)
            found[name] = lead
        db.session.commit()
    return found


def signed_in(browser, live_server, institution, owner, device):
    # The browser speaks English: the pages (and their date fields) follow the institution.
    context = browser.new_context(**device, locale="en-US")
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.goto(f"{live_server}/login")
    page.fill("#email", owner.email)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"**/staff/{institution.slug}/")
    return context, page, problems


def column(page, stage: Stage):
    return page.locator(f".board-column[data-stage='{stage.value}']")


def card(page, lead: Lead):
    return page.locator(f"article[data-lead='{lead.id}']")


def stage_of(lead: Lead) -> Stage:
    db.session.expire_all()
    return db.session.get(Lead, lead.id).stage


def mouse_drag(page, source, target) -> None:
    """Press on `source`, move in steps to the free space at the bottom of `target` (below
    its cards, where a dropped card goes last) and rest there a moment before letting go
    (a drop straight after one jump can land before the board has seen the pointer)."""
    start, end = source.bounding_box(), target.bounding_box()
    from_x, from_y = start["x"] + 10, start["y"] + start["height"] / 2
    x, y = end["x"] + end["width"] / 2, end["y"] + end["height"] - 12
    page.mouse.move(from_x, from_y)
    page.mouse.down()
    page.wait_for_timeout(50)
    page.mouse.move(from_x + 8, from_y + 4, steps=2)  # the browser starts its drag here
    page.wait_for_timeout(150)
    page.mouse.move(x, y, steps=12)
    page.wait_for_timeout(150)
    page.mouse.move(x + 2, y - 2)
    page.wait_for_timeout(50)
    page.mouse.up()


def touch_drag(context, page, source, target) -> None:
    """A finger's long press on `source`, then a slow move onto `target` (Chromium's
    touch events, through the DevTools protocol: Playwright has no touch drag)."""
    cdp = context.new_cdp_session(page)
    start, end = source.bounding_box(), target.bounding_box()
    x, y = start["x"] + 10, start["y"] + start["height"] / 2
    to_x, to_y = end["x"] + 8, end["y"] + 20
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [{"x": x, "y": y}]})
    page.wait_for_timeout(400)  # longer than the board's long-press delay
    for step in range(1, 21):
        point = {"x": x + (to_x - x) * step / 20, "y": y + (to_y - y) * step / 20}
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
        page.wait_for_timeout(30)
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


def test_the_board_fits_a_desktop_and_moves_a_dropped_card(
    live_server, browser, zh_institution, owner, shots
):
    institution = zh_institution
    found = seed_leads(institution, owner)
    context, page, problems = signed_in(browser, live_server, institution, owner, DESKTOP)
    try:
        page.goto(f"{live_server}/staff/{institution.slug}/leads/board")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        # Every stage side by side, inside the window: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= 1366
        boxes = [column(page, stage).bounding_box() for stage in Stage]
        assert len({round(box["y"]) for box in boxes}) == 1
        assert boxes[-1]["x"] + boxes[-1]["width"] <= 1366
        page.screenshot(path=str(shots / "board-1366x850.png"), full_page=True)

        wang = found["王芳"]
        mouse_drag(
            page,
            card(page, wang).locator("small"),
            column(page, Stage.CONTACTED).locator("[data-cards]"),
        )
        page.wait_for_selector("[data-board-message].flash-success")
        assert page.inner_text("[data-board-message]") == "已移到“已联系”。"
        assert card(page, wang).locator("xpath=ancestor::section").get_attribute("data-stage") == (
            "contacted"
        )
        assert column(page, Stage.CONTACTED).locator("[data-count]").inner_text() == "2"
        assert column(page, Stage.NEW).locator("[data-count]").inner_text() == "1"
        assert stage_of(wang) == Stage.CONTACTED
        # The card's own form follows the move (the keyboard's way stays right).
        assert card(page, wang).locator("select[name=stage]").input_value() == "contacted"

        # A drop on Lost asks why; sent without a reason, the server refuses and the card
        # goes back to its column with the server's message.
        li = found["李娜"]
        mouse_drag(
            page, card(page, li).locator("small"), column(page, Stage.LOST).locator("[data-cards]")
        )
        dialog = page.locator("[data-lost-dialog]")
        dialog.wait_for(state="visible")
        dialog.locator("button[value=move]").click()
        page.wait_for_selector("[data-board-message].flash-error")
        assert page.inner_text("[data-board-message]") == "请选择流失原因。"
        assert (
            card(page, li).locator("xpath=ancestor::section").get_attribute("data-stage") == "new"
        )
        assert stage_of(li) == Stage.NEW

        # With a reason it moves, and the closed card loses its form.
        mouse_drag(
            page, card(page, li).locator("small"), column(page, Stage.LOST).locator("[data-cards]")
        )
        dialog.wait_for(state="visible")
        reason = dialog.locator("select option").nth(1).get_attribute("value")
        dialog.locator("select").select_option(reason)
        dialog.locator("button[value=move]").click()
        page.wait_for_selector("[data-board-message].flash-success")
        db.session.expire_all()
        moved = db.session.get(Lead, li.id)
        assert (moved.stage, moved.lost_reason) == (Stage.LOST, reason)
        assert card(page, li).locator("form").count() == 0

        # What the server drew after a reload agrees.
        page.reload()
        assert column(page, Stage.CONTACTED).locator(f"article[data-lead='{wang.id}']").count() == 1
        refusal = "the server responded with a status of 422"  # the refused drop, on purpose
        assert [p for p in problems if refusal not in p] == []
    finally:
        context.close()


def test_the_board_on_a_phone_scrolls_inside_itself_and_moves_a_card_by_touch(
    live_server, browser, zh_institution, owner, shots
):
    institution = zh_institution
    wang = seed_leads(institution, owner)["王芳"]
    context, page, problems = signed_in(browser, live_server, institution, owner, PHONE)
    try:
        page.goto(f"{live_server}/staff/{institution.slug}/leads/board")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        sizes = page.evaluate(
            "(() => { const b = document.querySelector('[data-board]');"
            " return [b.scrollWidth, b.clientWidth]; })()"
        )
        assert sizes[0] > sizes[1]  # the board scrolls sideways, the page does not
        page.screenshot(path=str(shots / "board-390x844.png"), full_page=True)

        source = card(page, wang).locator("small")
        source.scroll_into_view_if_needed()
        # The next column shows its edge beside the first one: the card is dropped there.
        touch_drag(context, page, source, column(page, Stage.CONTACTED).locator("[data-cards]"))
        page.wait_for_selector("[data-board-message].flash-success")
        assert stage_of(wang) == Stage.CONTACTED
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert problems == []
    finally:
        context.close()


def test_roll_call_all_present_then_one_child_changed(
    live_server, browser, client, zh_institution, owner, shots
):
    institution = zh_institution
    course = make_course(institution)
    register(client, institution, course)
    register(client, institution, course, phone="13900139000", student_name="Mia")
    lesson = course.lessons[0]
    context, page, problems = signed_in(browser, live_server, institution, owner, PHONE)
    try:
        page.goto(f"{live_server}/staff/{institution.slug}/lessons/{lesson.id}/roll-call")
        page.click("button.roll-all-present")
        page.wait_for_selector(".flash-success")
        assert page.locator("input[value=present]:checked").count() == 2
        page.screenshot(path=str(shots / "roll-call-390x844.png"), full_page=True)

        seats = {
            s.enrolment.student.name: s for s in db.session.scalars(select(Seat).join(Enrolment))
        }
        page.click(f"label.seg-absent:has(input[name='seat-{seats['Mia'].id}'])")
        page.click("form.roll-call button[type=submit]")
        page.wait_for_selector(".flash-success")
        db.session.expire_all()
        assert db.session.get(Seat, seats["Leo"].id).attendance == Attendance.PRESENT
        assert db.session.get(Seat, seats["Mia"].id).attendance == Attendance.ABSENT
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        assert problems == []
    finally:
        context.close()


def test_a_date_field_shows_a_chinese_calendar_on_a_chinese_page(
    live_server, browser, zh_institution, owner, shots
):
    institution = zh_institution
    wang = seed_leads(institution, owner)["王芳"]
    context, page, problems = signed_in(browser, live_server, institution, owner, DESKTOP)
    try:
        page.goto(f"{live_server}/staff/{institution.slug}/leads/{wang.id}")
        shown = page.locator("#next_contact_at")  # the label's field is the one people see
        assert shown.get_attribute("type") == "text"
        assert page.locator("input[name=next_contact_at]").get_attribute("type") == "hidden"
        shown.click()
        calendar = page.locator(".flatpickr-calendar.open")
        calendar.wait_for(state="visible")
        weekdays = calendar.locator(".flatpickr-weekday").all_inner_texts()
        assert [w.strip() for w in weekdays][:2] == ["周一", "周二"]  # Monday first
        assert (
            calendar.locator(".flatpickr-monthDropdown-months option:checked")
            .inner_text()
            .endswith("月")
        )
        page.wait_for_timeout(400)  # the calendar's opening animation
        page.screenshot(path=str(shots / "datepicker-zh-1366x850.png"))

        calendar.locator(".flatpickr-day:not(.prevMonthDay):not(.nextMonthDay)").nth(14).click()
        page.keyboard.press("Escape")
        value = page.locator("input[name=next_contact_at]").input_value()
        assert re.fullmatch(r"\d{4}-\d{2}-(15)T\d{2}:\d{2}", value), value
        assert re.fullmatch(r"\d{4}年\d{1,2}月15日 \d{2}:\d{2}", shown.input_value())

        page.fill("#text", "电话沟通，周六来试听")
        page.click("form[action$='/follow-up'] button[type=submit]")
        page.wait_for_selector(".flash-success")
        db.session.expire_all()
        saved = db.session.get(Lead, wang.id).next_contact_at.astimezone(institution.zone)
        assert saved.strftime("%Y-%m-%dT%H:%M") == value
        assert problems == []
    finally:
        context.close()
