"""One family is one record, however it arrives; staff can find, edit, merge, import and
export contacts."""

from __future__ import annotations

import io

import pytest
from sqlalchemy import func, select

from app.contacts.models import Contact, ContactEvent, ContactTouch, EventKind, SourceKind, Student
from app.contacts.services import (
    ContactDetails,
    StudentDetails,
    Touch,
    find_or_create_contact,
    merge_contacts,
    set_tags,
)
from app.errors import ServiceError
from app.extensions import db
from tests.factories import make_group_buy, make_member
from tests.helpers import login, open_team


def arrive(institution, phone, name="Parent", touch=None, **details):
    contact, created = find_or_create_contact(
        institution,
        phone=phone,
        details=ContactDetails(parent_name=name, **details),
        touch=touch or Touch(SourceKind.FORM, ref="f1"),
    )
    db.session.commit()
    return contact, created


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model))


def test_the_same_phone_in_two_formats_is_one_contact(institution):
    first, created_first = arrive(institution, "138 0013 8000", "Wang Fang")
    second, created_second = arrive(institution, "+86 13800138000", "Wang Fang")
    assert (created_first, created_second) == (True, False)
    assert first.id == second.id and first.phone == "+8613800138000"
    assert count(Contact) == 1


def test_invalid_phone_is_refused_and_creates_nothing(institution):
    for phone in ("12345", "not a phone", "", "+86 1380013800012345"):
        with pytest.raises(ServiceError) as refused:
            find_or_create_contact(
                institution,
                phone=phone,
                details=ContactDetails(parent_name="X"),
                touch=Touch(SourceKind.FORM),
            )
        assert refused.value.field == "phone"
    assert count(Contact) == 0


def test_new_details_fill_in_but_never_overwrite_staff_edits(institution, owner_client):
    contact, _ = arrive(institution, "13800138000", "Mum")
    owner_client.post(
        f"/staff/{institution.slug}/contacts/{contact.id}/edit",
        data={"parent_name": "Wang Fang (mother of Leo)", "phone": contact.phone, "owner_id": ""},
    )
    arrive(
        institution,
        "13800138000",
        "wang",
        email="wang@example.com",
        students=[StudentDetails("Leo", "Grade 3")],
    )
    arrive(
        institution,
        "13800138000",
        "W",
        students=[StudentDetails("leo ", "Grade 4"), StudentDetails("Mia")],
    )
    db.session.refresh(contact)
    assert contact.parent_name == "Wang Fang (mother of Leo)"  # staff edit kept
    assert contact.email == "wang@example.com"  # filled in
    assert [(s.name, s.grade) for s in contact.students] == [("Leo", "Grade 4"), ("Mia", None)]


def test_first_and_latest_touch_are_recorded(institution):
    contact, _ = arrive(
        institution, "13800138000", touch=Touch(SourceKind.FORM, ref="poster", utm_source="wechat")
    )
    arrive(institution, "13800138000", touch=Touch(SourceKind.CAMPAIGN, ref="summer"))
    db.session.refresh(contact)
    assert (contact.first_touch.ref, contact.first_touch.utm_source) == ("poster", "wechat")
    assert contact.latest_touch.ref == "summer"
    kinds = [e.kind for e in db.session.scalars(select(ContactEvent).order_by(ContactEvent.id))]
    assert kinds == [EventKind.CREATED, EventKind.TOUCH, EventKind.TOUCH]


def test_a_new_family_in_the_session_is_the_family_written(institution):
    """A new family's contact, children and first touch are written together (one
    statement on PostgreSQL): what the request goes on with is what the database holds."""
    touch = Touch(
        SourceKind.CAMPAIGN,
        ref="summer",
        referral_code="friend-1",
        utm_source="wechat",
        utm_medium="group",
        utm_campaign="july",
        referrer="https://weixin.qq.com/s/abc",
    )
    details = ContactDetails(
        parent_name=" Wang Fang ",
        email="wang@example.com",
        consent_text="I agree.",
        locale="zh",
        students=[
            StudentDetails("Leo ", "Grade 3", 2017, "No. 2 Primary"),
            StudentDetails("  "),
            StudentDetails("Mia"),
        ],
    )
    contact, created = find_or_create_contact(
        institution, phone="13800138000", details=details, touch=touch
    )

    def seen(contact):
        first = contact.first_touch
        return {
            "contact": (
                contact.parent_name,
                contact.phone,
                contact.email,
                contact.consent_text,
                contact.consent_at is not None,
                contact.locale,
                contact.referral_code,
                contact.staff_edited,
            ),
            "children": [(s.name, s.grade, s.birth_year, s.school, s.id) for s in contact.students],
            "touch": (
                first.id,
                first.kind,
                first.ref,
                first.referral_code,
                first.utm_source,
                first.utm_medium,
                first.utm_campaign,
                first.referrer,
                contact.latest_touch.id,
            ),
        }

    in_the_request = seen(contact)
    db.session.commit()
    db.session.expire_all()
    assert created
    assert seen(db.session.get(Contact, contact.id)) == in_the_request
    assert in_the_request["contact"][:3] == ("Wang Fang", "+8613800138000", "wang@example.com")
    assert [child[:4] for child in in_the_request["children"]] == [
        ("Leo", "Grade 3", 2017, "No. 2 Primary"),
        ("Mia", None, None, None),
    ]
    assert in_the_request["touch"][2:4] == ("summer", "friend-1")
    # the family's own code to share, not the friend's it came with
    assert in_the_request["contact"][6] not in (None, "friend-1")
    kinds = [e.kind for e in db.session.scalars(select(ContactEvent).order_by(ContactEvent.id))]
    assert kinds == [EventKind.CREATED, EventKind.TOUCH]
    assert (count(Contact), count(Student), count(ContactTouch)) == (1, 2, 1)


def test_staff_search_and_filters(owner_client, institution, owner):
    a, _ = arrive(
        institution,
        "13800138000",
        "Wang Fang",
        students=[StudentDetails("Leo")],
        touch=Touch(SourceKind.FORM),
    )
    b, _ = arrive(institution, "13900139000", "Li Na", touch=Touch(SourceKind.IMPORT))
    set_tags(b, ["vip"])
    b.owner_id = owner.id
    db.session.commit()
    base = f"/staff/{institution.slug}/contacts"

    def names(query: str) -> set[str]:
        page = owner_client.get(f"{base}?{query}").get_data(as_text=True)
        return {name for name in ("Wang Fang", "Li Na") if name in page}

    assert names("q=wang") == {"Wang Fang"}
    assert names("q=139001") == {"Li Na"}
    assert names("q=Leo") == {"Wang Fang"}
    assert names("source=import") == {"Li Na"}
    from app.leads.services import create_lead

    create_lead(institution, a)
    db.session.commit()
    assert names("stage=new") == {"Wang Fang"}
    assert names("stage=nonsense") == {"Wang Fang", "Li Na"}
    assert names("tag=vip") == {"Li Na"}
    assert names(f"owner={owner.id}") == {"Li Na"}
    assert names("created_from=2000-01-01&created_to=2000-01-02") == set()
    assert names("created_from=not-a-date&q=" + "x" * 500) == {"Wang Fang", "Li Na"}


def test_export_is_csv_of_the_filtered_list_and_neutralises_formulas(owner_client, institution):
    arrive(institution, "13800138000", '=HYPERLINK("http://evil")')
    arrive(institution, "13900139000", "Li Na", touch=Touch(SourceKind.IMPORT))
    response = owner_client.get(f"/staff/{institution.slug}/contacts/export.csv?source=form")
    assert response.headers["Content-Type"].startswith("text/csv")
    text = response.get_data(as_text=True)
    assert text.startswith("\ufeffparent_name,phone")
    assert "'=HYPERLINK" in text and "Li Na" not in text


def test_staff_members_cannot_export_or_import(client, institution):
    login(client, make_member(institution))
    assert client.get(f"/staff/{institution.slug}/contacts/export.csv").status_code == 403
    assert client.get(f"/staff/{institution.slug}/contacts/import").status_code == 403
    assert client.get(f"/staff/{institution.slug}/contacts").status_code == 200


def upload(client, institution, text: str, encoding="utf-8"):
    return client.post(
        f"/staff/{institution.slug}/contacts/import",
        data={"file": (io.BytesIO(text.encode(encoding)), "contacts.csv")},
    )


def test_import_with_a_bad_row_imports_nothing(owner_client, institution):
    csv_text = (
        "parent_name,phone,email\n"
        "Wang Fang,138 0013 8000,wang@example.com\n"
        ",139 0013 9000,\n"
        "Li Na,12345,not-an-email\n"
    )
    response = upload(owner_client, institution, csv_text)
    page = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "parent_name is empty" in page and "phone is not a valid number" in page
    assert "email is not a valid address" in page
    confirm = owner_client.post(
        f"/staff/{institution.slug}/contacts/import", data={"csv_text": "", "confirm": "yes"}
    )
    assert confirm.status_code == 422
    assert count(Contact) == 0


def test_import_dedupes_by_phone_and_applies_after_preview(owner_client, institution):
    import base64

    existing, _ = arrive(institution, "13800138000", "Wang")
    csv_text = (
        "parent_name,phone,student_name,student_grade,tags\n"
        "Wang Fang,+86 138-0013-8000,Leo,Grade 3,vip\n"
        'Li Na,13900139000,Mia,,"trial, spring"\n'
        "Li Na again,139 0013 9000,,,\n"
    )
    preview = upload(owner_client, institution, csv_text, encoding="gb18030")
    page = preview.get_data(as_text=True)
    assert preview.status_code == 200
    assert "1 new, 1 already on file, 1 repeated in the file, 0 with errors" in page
    assert count(Contact) == 1  # a preview writes nothing

    response = owner_client.post(
        f"/staff/{institution.slug}/contacts/import",
        data={"csv_text": base64.b64encode(csv_text.encode("gb18030")).decode(), "confirm": "yes"},
    )
    assert response.status_code == 302
    assert count(Contact) == 2
    db.session.refresh(existing)
    assert existing.parent_name == "Wang Fang" and existing.student_names == "Leo"
    assert {t.name for t in existing.tags} == {"vip"}
    li = db.session.scalar(select(Contact).where(Contact.phone == "+8613900139000"))
    assert li.parent_name == "Li Na again" and {t.name for t in li.tags} == {"trial", "spring"}


def test_merge_moves_everything_to_the_survivor(institution, owner):
    survivor, _ = arrive(institution, "13800138000", "Wang Fang", students=[StudentDetails("Leo")])
    duplicate, _ = arrive(
        institution,
        "13900139000",
        "Wang F.",
        email="w@example.com",
        students=[StudentDetails("Mia")],
        touch=Touch(SourceKind.CAMPAIGN, ref="summer"),
    )
    set_tags(duplicate, ["vip"])
    db.session.commit()
    duplicate_id = duplicate.id

    merge_contacts(survivor, duplicate, owner)
    db.session.commit()

    assert db.session.get(Contact, duplicate_id) is None
    db.session.refresh(survivor)
    assert sorted(s.name for s in survivor.students) == ["Leo", "Mia"]
    assert survivor.email == "w@example.com" and {t.name for t in survivor.tags} == {"vip"}
    assert count(Student) == 2
    assert {t.contact_id for t in db.session.scalars(select(ContactTouch))} == {survivor.id}
    kinds = [
        e.kind
        for e in db.session.scalars(
            select(ContactEvent).where(ContactEvent.contact_id == survivor.id)
        )
    ]
    assert EventKind.MERGED in kinds and kinds.count(EventKind.CREATED) == 2


def test_merge_by_phone_from_the_contact_page(owner_client, institution):
    survivor, _ = arrive(institution, "13800138000", "Wang Fang")
    arrive(institution, "13900139000", "Wang F.")
    url = f"/staff/{institution.slug}/contacts/{survivor.id}/merge"
    ask = owner_client.post(url, data={"phone": "139 0013 9000"})
    assert "Merge Wang F." in ask.get_data(as_text=True) and count(Contact) == 2
    self_merge = owner_client.post(url, data={"phone": "13800138000", "confirm": "yes"})
    assert self_merge.status_code == 422 and count(Contact) == 2
    done = owner_client.post(url, data={"phone": "139 0013 9000", "confirm": "yes"})
    assert done.status_code == 302 and count(Contact) == 1


def test_two_families_with_open_leads_are_not_merged_half_way(owner_client, institution):
    from app.leads import services as leads
    from app.leads.models import Lead

    survivor, _ = arrive(institution, "13800138000", "Wang Fang")
    duplicate, _ = arrive(institution, "13900139000", "Wang F.")
    for contact in (survivor, duplicate):
        leads.create_lead(institution, contact, source="test")
    db.session.commit()
    url = f"/staff/{institution.slug}/contacts/{survivor.id}/merge"
    refused = owner_client.post(url, data={"phone": "13900139000", "confirm": "yes"})
    assert refused.status_code == 422
    assert "can hold only once (an open lead" in refused.get_data(as_text=True)
    db.session.expire_all()
    assert count(Contact) == 2 and count(Lead) == 2
    assert {lead.contact_id for lead in db.session.scalars(select(Lead))} == {
        survivor.id,
        duplicate.id,
    }


def test_edit_refuses_a_phone_of_another_contact(owner_client, institution):
    a, _ = arrive(institution, "13800138000", "A")
    arrive(institution, "13900139000", "B")
    response = owner_client.post(
        f"/staff/{institution.slug}/contacts/{a.id}/edit",
        data={"parent_name": "A2", "phone": "139 0013 9000", "owner_id": ""},
    )
    assert response.status_code == 422
    assert "Another contact has this phone number" in response.get_data(as_text=True)
    db.session.refresh(a)
    assert (a.parent_name, a.phone) == ("A", "+8613800138000")


def test_staff_add_contacts_notes_and_children(owner_client, institution):
    base = f"/staff/{institution.slug}/contacts"
    created = owner_client.post(
        f"{base}/new",
        data={"parent_name": "Zhao Lei", "phone": "13700137000", "owner_id": "", "tags": "walk-in"},
    )
    assert created.status_code == 302
    again = owner_client.post(
        f"{base}/new", data={"parent_name": "Zhao", "phone": "+86 137 0013 7000", "owner_id": ""}
    )
    assert again.status_code == 422 and count(Contact) == 1
    contact = db.session.scalar(select(Contact))
    assert contact.first_touch.kind == SourceKind.STAFF
    owner_client.post(f"{base}/{contact.id}/notes", data={"text": "<b>Called</b>, call back"})
    owner_client.post(f"{base}/{contact.id}/students", data={"name": "Tom", "grade": "G2"})
    assert (
        owner_client.post(
            f"{base}/{contact.id}/students", data={"name": "", "birth_year": "3000"}
        ).status_code
        == 422
    )
    page = owner_client.get(f"{base}/{contact.id}").get_data(as_text=True)
    assert "&lt;b&gt;Called&lt;/b&gt;" in page and "<b>Called" not in page
    assert "Tom" in page and "walk-in" in page


def test_a_contact_page_shows_leads_places_and_payments_in_words_not_codes(
    owner_client, client, institution
):
    """What the family did, as staff read it: the group buy's title (not its code), the
    lead's stage and source in words, the team place and its payment; the phone written
    as people write it."""
    group_buy = make_group_buy(institution, team_size=3)
    open_team(client, institution, group_buy, 1, phone="138 0013 8000")
    contact = db.session.scalar(select(Contact))

    page = owner_client.get(f"/staff/{institution.slug}/contacts/{contact.id}")
    html = page.get_data(as_text=True)

    assert page.status_code == 200
    assert "138 0013 8000" in html and ">+8613800138000<" not in html
    assert f"Campaign · {group_buy.title}" in html and group_buy.code not in html
    assert "Trial booked" in html and "Group buy" in html and "group_buy" not in html
    assert "Group-buy places" in html and "Held" in html
    assert "Payments" in html and "CN¥199.00" in html
