"""Every success page leads somewhere: the lessons with their time and place, a calendar
file, the next step the institution chose for the course, and the family's page."""

from __future__ import annotations

import io
import re

from app.courses.models import Course, NextStep
from app.extensions import db
from app.jobs import run_burst
from tests.factories import make_course, make_flash_sale
from tests.helpers import login, parent, png_bytes, register


def course_form(**values) -> dict:
    fields = {"title": "Piano taster", "kind": "trial", "teacher_id": "", "price": "0"}
    return {**fields, "capacity": "6", "is_open": "y", **values}


def test_staff_choose_the_teachers_contact_as_the_next_step_and_families_see_it(
    client, institution, owner
):
    course = make_course(institution)
    login(client, owner)
    saved = client.post(
        f"/staff/{institution.slug}/courses/{course.id}/edit",
        data=course_form(
            next_step="teacher",
            next_step_text="Bring a pencil and the workbook.",
            teacher_qr=(io.BytesIO(png_bytes()), "wechat.png"),
        ),
        content_type="multipart/form-data",
    )
    client.get("/logout")
    confirmation = client.get(register(client, institution, course).headers["Location"])
    page = confirmation.get_data(as_text=True)
    qr = re.search(r'src="([^"]*/teacher-qr[^"]*)"', page)

    assert saved.status_code == 302
    db.session.refresh(course)
    assert course.next_step == NextStep.TEACHER and course.has_teacher_qr
    assert "What happens next" in page and "Room 3" in page
    assert f"/c/{course.code}/r/" in page and "calendar.ics" in page
    assert "Add the teacher's contact" in page and "Bring a pencil and the workbook." in page
    assert qr and client.get(qr[1]).data == png_bytes()
    assert f'href="/{institution.slug}/me"' in page  # the family's page


def test_a_next_step_without_what_it_needs_is_refused_and_changes_nothing(
    client, institution, owner
):
    course = make_course(institution)
    login(client, owner)

    no_qr = client.post(
        f"/staff/{institution.slug}/courses/{course.id}/edit",
        data=course_form(next_step="teacher", title="Renamed"),
    )
    no_message = client.post(
        f"/staff/{institution.slug}/courses/{course.id}/edit",
        data=course_form(next_step="message", next_step_text="  ", title="Renamed"),
    )
    not_a_step = client.post(
        f"/staff/{institution.slug}/courses/{course.id}/edit",
        data=course_form(next_step="phone-the-owner", title="Renamed"),
    )

    assert (no_qr.status_code, no_message.status_code, not_a_step.status_code) == (422,) * 3
    assert "Upload the QR code of the teacher" in no_qr.get_data(as_text=True)
    assert "Write the message families should read." in no_message.get_data(as_text=True)
    db.session.expire_all()
    course = db.session.get(Course, course.id)
    assert (course.title, course.next_step) == ("Maths Olympiad trial", NextStep.GROUP)


def test_a_flash_sale_paid_for_leads_to_the_lessons_and_the_familys_page(client, institution):
    sale = make_flash_sale(institution, stock=3)
    page_path = f"/{institution.slug}/fs/{sale.code}"
    taken = client.post(page_path, data=parent(1))
    run_burst()  # the writer job writes the order
    order_code = taken.headers["Location"].rsplit("#order-", 1)[1]
    paid = client.post(f"{page_path}/orders/{order_code}/pay", data=parent(1))

    page = client.get(paid.headers["Location"]).get_data(as_text=True)

    assert "What happens next" in page and "Room 3" in page and "calendar.ics" in page
    assert f'href="/{institution.slug}/me"' in page
