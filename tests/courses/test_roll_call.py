"""The roll call's "all present": one press marks every child with a seat present, moves
their trial leads, and individual children can still be changed afterwards."""

from __future__ import annotations

from sqlalchemy import select

from app.accounts.models import Role
from app.contacts.models import ContactEvent, EventKind
from app.courses.models import Attendance, Enrolment, Seat, SeatStatus
from app.extensions import db
from app.leads.models import Lead, Stage
from tests.factories import make_course, make_institution, make_member
from tests.helpers import login, register


def seat_of(name: str) -> Seat:
    return db.session.scalar(select(Seat).join(Enrolment).where(Enrolment.student.has(name=name)))


def roll_call_url(institution, lesson) -> str:
    return f"/staff/{institution.slug}/lessons/{lesson.id}/roll-call"


def test_all_present_marks_every_booked_seat_and_moves_the_leads(client, institution, owner):
    course = make_course(institution, capacity=2)
    register(client, institution, course)
    register(client, institution, course, phone="13900139000", student_name="Mia")
    register(client, institution, course, phone="13700137000", student_name="Bao")  # waitlist
    lesson = course.lessons[0]
    leo, mia, bao = seat_of("Leo"), seat_of("Mia"), seat_of("Bao")
    assert bao.status == SeatStatus.WAITLISTED
    login(client, owner)
    url = roll_call_url(institution, lesson)
    client.post(url, data={f"seat-{mia.id}": "absent"})  # marked before, changed by the button

    page = client.get(url).get_data(as_text=True)
    assert "All present" in page and f"{url}/all-present" in page
    response = client.post(f"{url}/all-present")
    assert response.status_code == 302 and response.headers["Location"].endswith(url)
    assert "All 2 children marked present." in client.get(url).get_data(as_text=True)

    db.session.expire_all()
    assert (leo.attendance, mia.attendance) == (Attendance.PRESENT, Attendance.PRESENT)
    assert bao.attendance is None  # a waitlist place is not a seat in the room
    stages = {lead.contact.phone: lead.stage for lead in db.session.scalars(select(Lead))}
    assert stages == {
        "+8613800138000": Stage.TRIAL_ATTENDED,
        "+8613900139000": Stage.TRIAL_ATTENDED,
        "+8613700137000": Stage.TRIAL_BOOKED,
    }
    moves = db.session.scalars(select(ContactEvent).where(ContactEvent.kind == EventKind.LEAD))
    assert sum(1 for e in moves if e.data.get("to") == "trial_attended") == 2

    # The segmented controls still change one child afterwards.
    client.post(url, data={f"seat-{leo.id}": "present", f"seat-{mia.id}": "late"})
    db.session.expire_all()
    assert (leo.attendance, mia.attendance) == (Attendance.PRESENT, Attendance.LATE)


def test_all_present_of_another_institutions_lesson_is_404(client, institution):
    course = make_course(institution)
    register(client, institution, course)
    lesson = course.lessons[0]
    other = make_institution()
    login(client, make_member(other, Role.OWNER))
    url = f"/staff/{other.slug}/lessons/{lesson.id}/roll-call/all-present"
    assert client.post(url).status_code == 404
    url = f"/staff/{institution.slug}/lessons/{lesson.id}/roll-call/all-present"
    assert client.post(url).status_code == 404
    db.session.expire_all()
    assert seat_of("Leo").attendance is None
    assert db.session.scalar(select(Lead)).stage == Stage.TRIAL_BOOKED
