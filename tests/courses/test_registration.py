"""Registering from the public course page, the waitlist, attendance and enrolments."""

from __future__ import annotations

from sqlalchemy import func, select

from app.contacts.models import Contact, ContactEvent, EventKind, FamilyProgress
from app.courses.models import Enrolment, EnrolmentSource, Seat, SeatStatus
from app.devtools.mailsink import body_text
from app.extensions import db
from app.groups import services as groups
from app.groups.models import GroupKind
from app.jobs import run_burst
from app.leads.models import Lead, Stage
from app.notifications.models import Channel, OutboxMessage
from app.tenancy import bound
from tests.factories import make_course, make_institution
from tests.helpers import FAMILY, login, offered_group_link, register


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_course_page_shows_lessons_seats_left_and_social_tags(client, institution):
    course = make_course(institution, capacity=8)
    page = client.get(f"/{institution.slug}/c/{course.code}").get_data(as_text=True)
    assert 'property="og:title" content="Maths Olympiad trial"' in page
    assert "8 seats left" in page and "Room 3" in page


def test_registration_confirms_with_times_and_a_calendar_file(client, institution, mail_server):
    course = make_course(institution)
    response = register(client, institution, course)
    assert response.status_code == 302
    confirmation = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Leo is registered" in confirmation and "Add to my calendar" in confirmation

    ics = client.get(response.headers["Location"] + "/calendar.ics")
    assert ics.mimetype == "text/calendar"
    body = ics.get_data(as_text=True)
    assert body.count("BEGIN:VEVENT") == 1 and "Room 3" in body

    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    assert mail["Subject"] == "Leo is registered for Maths Olympiad trial"


def test_the_confirmation_offers_the_trial_group_on_its_page_and_in_its_e_mail(
    app, client, institution, mail_server
):
    course = make_course(institution)
    with bound(institution):
        group = groups.create_group(
            institution, title="奥数试听群", kind=GroupKind.TRIAL, course_id=course.id, rules="-"
        )
        invite = groups.create_invite(institution, group)
        db.session.commit()

    response = register(client, institution, course)

    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'href="/{institution.slug}/j/{invite.code}">Join the trial group</a>' in page
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    link, then = offered_group_link(mail, "奥数试听群")
    assert "Join the trial group" in body_text(mail)
    assert then == f"/{institution.slug}/j/{invite.code}"
    # The link signs the family in on another phone and goes on to the invitation.
    opened = app.test_client().get(link)
    assert opened.status_code == 302 and opened.headers["Location"] == then


def test_with_no_group_to_join_the_confirmation_offers_none(client, institution, mail_server):
    course = make_course(institution)
    with bound(institution):
        group = groups.create_group(
            institution, title="奥数试听群", kind=GroupKind.TRIAL, course_id=course.id, rules="-"
        )
        groups.revoke_invite(groups.create_invite(institution, group))  # its only link
        db.session.commit()

    response = register(client, institution, course)

    assert "group" not in client.get(response.headers["Location"]).get_data(as_text=True)
    run_burst()
    (mail,) = mail_server.to("wang.fang@example.com")
    text = body_text(mail)
    assert "group" not in text and "\n\n\n" not in text  # no line, no hole where it was


def test_registration_moves_the_family_to_trial_booked(client, institution):
    course = make_course(institution)
    register(client, institution, course)
    lead = db.session.scalar(select(Lead))
    assert lead.stage == Stage.TRIAL_BOOKED
    # A new family's lead is written booked at once, with the trail of one opened and moved.
    moves = [
        (event.data.get("from"), event.data["to"])
        for event in db.session.scalars(
            select(ContactEvent)
            .where(ContactEvent.kind == EventKind.LEAD)
            .order_by(ContactEvent.id)
        )
    ]
    assert moves == [(None, "new"), ("new", "trial_booked")]
    progress = db.session.get(FamilyProgress, lead.contact_id)
    assert progress.lead_at is not None and progress.booked_at is not None
    assert progress.lead_id == lead.id
    enrolment = db.session.scalar(select(Enrolment))
    assert enrolment.source == EnrolmentSource.FORM
    assert enrolment.student.name == "Leo" and enrolment.contact.phone == "+8613800138000"


def test_bad_registrations_say_why_and_change_nothing(client, institution):
    course = make_course(institution)
    for bad in [
        {"phone": "12"},
        {"student_name": ""},
        {"consent": ""},
        {"email": "not-an-address"},
    ]:
        response = register(client, institution, course, **bad)
        assert response.status_code == 422, bad
        assert "Please correct the fields marked below." in response.get_data(as_text=True)
    response = register(client, institution, course, lessons=[])
    assert response.status_code == 422
    assert "Choose at least one lesson." in response.get_data(as_text=True)
    assert (count(Contact), count(Enrolment), count(Seat), count(OutboxMessage)) == (0, 0, 0, 0)


def test_a_full_lesson_puts_the_family_on_the_waitlist_and_a_cancellation_promotes_them(
    client, institution, owner, mail_server
):
    course = make_course(institution, capacity=1)
    register(client, institution, course)
    response = register(
        client, institution, course, phone="13900139000", email="li@example.com", student_name="Mia"
    )
    waiting = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "Waitlist, number 1" in waiting
    mia = db.session.scalar(select(Seat).where(Seat.status == SeatStatus.WAITLISTED))
    run_burst()
    assert mail_server.to("li@example.com") == []  # waitlisted: no confirmation, no reminders

    leo = db.session.scalar(select(Seat).where(Seat.status == SeatStatus.BOOKED))
    login(client, owner)
    client.post(f"/staff/{institution.slug}/seats/{leo.id}/cancel")

    db.session.refresh(mia)
    assert mia.status == SeatStatus.BOOKED
    run_burst()
    (mail,) = mail_server.to("li@example.com")
    assert mail["Subject"] == "Good news: Mia has a seat in Maths Olympiad trial"
    reminders = db.session.scalars(
        select(OutboxMessage).where(
            OutboxMessage.template == "lesson_reminder",
            OutboxMessage.recipient == "li@example.com",
        )
    ).all()
    assert len(reminders) == 3


def test_roll_call_marks_attendance_moves_the_lead_and_lists_absences(client, institution, owner):
    course = make_course(institution)
    register(client, institution, course)
    register(client, institution, course, phone="13900139000", student_name="Mia")
    lesson = course.lessons[0]
    leo, mia = (
        db.session.scalar(select(Seat).join(Enrolment).where(Enrolment.student.has(name=name)))
        for name in ("Leo", "Mia")
    )
    login(client, owner)
    page = client.get(f"/staff/{institution.slug}/lessons/{lesson.id}/roll-call")
    assert "Leo" in page.get_data(as_text=True) and "Mia" in page.get_data(as_text=True)

    response = client.post(
        f"/staff/{institution.slug}/lessons/{lesson.id}/roll-call",
        data={f"seat-{leo.id}": "present", f"seat-{mia.id}": "absent"},
    )
    assert response.status_code == 302
    leads = {lead.contact.phone: lead.stage for lead in db.session.scalars(select(Lead))}
    assert leads == {"+8613800138000": Stage.TRIAL_ATTENDED, "+8613900139000": Stage.TRIAL_BOOKED}
    # Absences are for lessons that have happened; this one is in three days.
    assert "Mia" not in client.get(f"/staff/{institution.slug}/absences").get_data(as_text=True)


def test_staff_enrol_by_hand_and_export_enrolments(client, institution, owner):
    course = make_course(institution)
    login(client, owner)
    response = client.post(
        f"/staff/{institution.slug}/courses/{course.id}/enrolments",
        data={"parent_name": "Zhao Lei", "phone": "13700137000", "student_name": "Yuyu"},
    )
    assert response.status_code == 302
    enrolment = db.session.scalar(select(Enrolment))
    assert enrolment.source == EnrolmentSource.STAFF and len(enrolment.seats) == 1
    csv = client.get(f"/staff/{institution.slug}/courses/{course.id}/enrolments.csv")
    assert "Yuyu" in csv.get_data(as_text=True) and "+8613700137000" in csv.get_data(as_text=True)
    contact_page = client.get(f"/staff/{institution.slug}/contacts/{enrolment.contact_id}")
    assert "Maths Olympiad trial" in contact_page.get_data(as_text=True)


def test_staff_create_a_course_and_lessons_in_their_time_zone(client, institution, owner):
    login(client, owner)
    response = client.post(
        f"/staff/{institution.slug}/courses/new",
        data={"title": "Piano taster", "kind": "trial", "price": "0", "capacity": "6"},
    )
    assert response.status_code == 302
    course_url = response.headers["Location"]
    course_id = int(course_url.rstrip("/").split("/")[-1])
    response = client.post(
        f"{course_url}/lessons",
        data={"starts_at": "2030-05-01T19:00", "duration_minutes": "45", "place": "Studio"},
    )
    assert response.status_code == 302
    page = client.get(course_url).get_data(as_text=True)
    assert "Studio" in page and "0 / 6" in page
    from app.courses.models import Lesson

    lesson = db.session.scalar(select(Lesson).where(Lesson.course_id == course_id))
    assert lesson.starts_at.isoformat() == "2030-05-01T11:00:00+00:00"  # 19:00 in Shanghai

    past = client.post(
        f"{course_url}/lessons", data={"starts_at": "2020-01-01T10:00", "duration_minutes": "45"}
    )
    assert past.status_code == 422 and "Choose a time in the future." in past.get_data(as_text=True)


def test_another_institutions_course_page_is_a_404(client, institution):
    course = make_course(institution)
    other = make_institution()
    db.session.commit()
    assert client.get(f"/{other.slug}/c/{course.code}").status_code == 404
    assert register(client, other, course).status_code == 404
    assert count(Enrolment) == 0


def test_in_app_messages_reach_the_family_page(client, institution):
    course = make_course(institution)
    register(client, institution, course)
    run_burst()
    inapp = db.session.scalar(
        select(OutboxMessage).where(
            OutboxMessage.channel == Channel.INAPP,
            OutboxMessage.template == "registration_confirmed",
        )
    )
    assert inapp.body and "Leo" in inapp.subject
    assert FAMILY["parent_name"] in inapp.body
