"""Staff build forms, share them, and work leads through the pipeline."""

from __future__ import annotations

import io
from datetime import timedelta

import pytest
from sqlalchemy import select

from app.accounts.models import Role
from app.contacts.models import ContactEvent, EventKind
from app.db import utcnow
from app.errors import ServiceError
from app.extensions import db
from app.leads import services
from app.leads.forms import OPTIONAL_BUILTINS
from app.leads.models import LeadForm, Stage
from tests.factories import make_lead, make_member
from tests.helpers import login, png_bytes, staff_base


def test_builder_creates_a_form_with_custom_questions(owner_client, institution):
    data = {
        "title": "Summer camp",
        "intro": "Two weeks of art",
        "is_open": "y",
        **{f"builtins-{n}-key": key for n, key in enumerate(OPTIONAL_BUILTINS)},
        "builtins-0-include": "y",
        "builtins-0-required": "y",  # child_name
        "builtins-2-include": "y",
        "builtins-2-caption": "Which subject?",  # subject
        "custom-0-caption": "Shirt size",
        "custom-0-kind": "single_choice",
        "custom-0-choices": "S\nM\nL",
        "custom-0-position": "1",
        "custom-1-caption": "Allergies",
        "custom-1-kind": "long_text",
        "custom-1-position": "0",
        "custom-2-caption": "",
        "custom-2-kind": "short_text",
        "consent_text": "OK to call me",
        "closes_at": "2030-06-01T18:00",
    }
    response = owner_client.post(f"{staff_base(institution)}/forms/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    form = db.session.scalar(select(LeadForm))
    keys = [(f["key"], f.get("label")) for f in form.fields]
    assert keys == [
        ("parent_name", ""),
        ("phone", ""),
        ("child_name", ""),
        ("subject", "Which subject?"),
        ("custom_1", "Allergies"),
        ("custom_2", "Shirt size"),
    ]
    assert form.fields[-1]["choices"] == ["S", "M", "L"]
    assert form.closes_at.isoformat() == "2030-06-01T10:00:00+00:00"  # 18:00 in Shanghai

    edit = owner_client.get(f"{staff_base(institution)}/forms/{form.id}/edit").get_data(
        as_text=True
    )
    assert "Shirt size" in edit and "Allergies" in edit


def test_builder_refuses_a_choice_question_without_choices(owner_client, institution):
    response = owner_client.post(
        f"{staff_base(institution)}/forms/new",
        data={
            "title": "T",
            "custom-0-caption": "Pick",
            "custom-0-kind": "single_choice",
            "custom-0-choices": "only one",
        },
    )
    assert response.status_code == 422
    assert "needs 2 to 20 choices" in response.get_data(as_text=True)
    assert db.session.scalar(select(LeadForm)) is None


def test_share_link_and_qr_codes_carry_ref_and_utm(owner_client, institution, owner):
    owner_client.post(f"{staff_base(institution)}/forms/new", data={"title": "Open day"})
    form = db.session.scalar(select(LeadForm))
    query = f"?utm_source=poster&ref=staff-{owner.id}"
    page = owner_client.get(f"{staff_base(institution)}/forms/{form.id}{query}").get_data(
        as_text=True
    )
    assert f"http://localhost/{institution.slug}/f/{form.code}?utm_source=poster&amp;ref=" in page
    svg = owner_client.get(f"{staff_base(institution)}/forms/{form.id}/qr.svg{query}")
    png = owner_client.get(f"{staff_base(institution)}/forms/{form.id}/qr.png{query}")
    assert svg.headers["Content-Type"].startswith("image/svg+xml") and b"<svg" in svg.data
    assert png.headers["Content-Type"] == "image/png" and png.data[:8] == b"\x89PNG\r\n\x1a\n"


def test_stage_changes_are_recorded_with_who_and_need_a_lost_reason(
    owner_client, institution, owner
):
    lead = make_lead(institution)
    url = f"{staff_base(institution)}/leads/{lead.id}/stage"
    assert owner_client.post(url, data={"stage": "contacted"}).status_code == 302
    refused = owner_client.post(url, data={"stage": "lost", "lost_reason": "Because"})
    assert refused.status_code == 422
    assert "Choose why the family was lost." in refused.get_data(as_text=True)
    assert owner_client.post(url, data={"stage": "lost", "lost_reason": "Price"}).status_code == 302
    db.session.refresh(lead)
    assert (lead.stage, lead.lost_reason) == (Stage.LOST, "Price") and lead.closed_at
    assert owner_client.post(url, data={"stage": "trial_booked"}).status_code == 422
    assert owner_client.post(url, data={"stage": "new"}).status_code == 302  # reopened
    events = db.session.scalars(
        select(ContactEvent).where(ContactEvent.kind == EventKind.LEAD).order_by(ContactEvent.id)
    ).all()
    assert [e.data.get("to") for e in events] == ["new", "contacted", "lost", "new"]
    assert events[2].actor_id == owner.id and events[2].data["reason"] == "Price"


def test_enrolled_is_final_and_advance_only_moves_forward(institution, owner, tenant):
    lead = make_lead(institution)
    services.advance_lead(lead.contact, Stage.TRIAL_ATTENDED)
    services.advance_lead(lead.contact, Stage.TRIAL_BOOKED)  # behind: no change
    assert lead.stage == Stage.TRIAL_ATTENDED
    services.move_lead(lead, Stage.ENROLLED, owner)
    with pytest.raises(ServiceError):
        services.move_lead(lead, Stage.NEW, owner)


def test_follow_up_sets_next_contact_and_shows_due_and_overdue(client, institution):
    staff = make_member(institution)
    lead = make_lead(institution)
    lead.owner_id = staff.id
    db.session.commit()
    login(client, staff)
    soon = (utcnow() + timedelta(minutes=5)).astimezone(institution.zone)
    response = client.post(
        f"{staff_base(institution)}/leads/{lead.id}/follow-up",
        data={"text": "Called, wants Saturday", "next_contact_at": soon.strftime("%Y-%m-%dT%H:%M")},
    )
    assert response.status_code == 302
    db.session.refresh(lead)
    assert lead.stage == Stage.CONTACTED and lead.next_contact_at is not None
    due = client.get(f"{staff_base(institution)}/leads/due").get_data(as_text=True)
    assert "Wang Fang" in due and "Overdue" not in due

    lead.next_contact_at = utcnow() - timedelta(hours=1)
    db.session.commit()
    due = client.get(f"{staff_base(institution)}/leads/due").get_data(as_text=True)
    assert "Overdue" in due
    board = client.get(f"{staff_base(institution)}/leads/board").get_data(as_text=True)
    assert "Wang Fang" in board and "overdue" in board


def test_owner_assignment_by_hand_in_bulk_and_round_robin(owner_client, institution, owner):
    a, b = make_member(institution), make_member(institution)
    lead1, lead2 = make_lead(institution), make_lead(institution, "13900139000", "Li Na")
    owner_client.post(
        f"{staff_base(institution)}/leads/{lead1.id}/owner", data={"owner_id": str(a.id)}
    )
    db.session.refresh(lead1)
    assert lead1.owner_id == a.id
    owner_client.post(
        f"{staff_base(institution)}/leads/assign",
        data={"owner_id": str(b.id), "lead_ids": [lead1.id, lead2.id]},
    )
    db.session.refresh(lead1)
    db.session.refresh(lead2)
    assert (lead1.owner_id, lead2.owner_id) == (b.id, b.id)

    owner_client.post(
        f"{staff_base(institution)}/leads/settings",
        data={"lost_reasons": "Price\nToo far", "round_robin": [str(a.id), str(b.id)]},
    )
    owners = [make_lead(institution, f"1370013{n:04d}", f"P{n}").owner_id for n in range(4)]
    assert sorted(owners) == sorted([a.id, b.id, a.id, b.id])
    assert owners[0] != owners[1] and owners[2] != owners[3]
    assert services.lost_reason_names(institution) == ["Price", "Too far"]


def test_list_filters_by_stage_owner_and_source(owner_client, institution, owner):
    lead1 = make_lead(institution)
    make_lead(institution, "13900139000", "Li Na")
    lead1.owner_id = owner.id
    lead1.stage = Stage.CONTACTED
    lead1.source = "poster"
    db.session.commit()
    url = f"{staff_base(institution)}/leads"

    def names(query: str) -> set[str]:
        page = owner_client.get(f"{url}?{query}").get_data(as_text=True)
        return {n for n in ("Wang Fang", "Li Na") if n in page}

    assert names("stage=contacted") == {"Wang Fang"}
    assert names(f"owner={owner.id}") == {"Wang Fang"}
    assert names("source=poster") == {"Wang Fang"}
    assert names("stage=bogus&created_from=junk") == {"Wang Fang", "Li Na"}
    export = owner_client.get(f"{url}/export.csv?stage=new").get_data(as_text=True)
    assert "Li Na" in export and "Wang Fang" not in export


def test_staff_cannot_build_forms_or_change_pipeline_settings(client, institution):
    login(client, make_member(institution, Role.STAFF))
    assert client.get(f"{staff_base(institution)}/forms/new").status_code == 403
    assert client.get(f"{staff_base(institution)}/leads/settings").status_code == 403
    assert client.get(f"{staff_base(institution)}/leads").status_code == 200


def test_cover_picture_is_checked_served_and_previewed(owner_client, client, institution):
    fake = owner_client.post(
        f"{staff_base(institution)}/forms/new",
        data={"title": "Camp", "cover": (io.BytesIO(b"<svg onload=alert(1)>"), "cover.png")},
    )
    assert fake.status_code == 422 and db.session.scalar(select(LeadForm)) is None
    ok = owner_client.post(
        f"{staff_base(institution)}/forms/new",
        data={"title": "Camp", "cover": (io.BytesIO(png_bytes()), "cover.png")},
    )
    assert ok.status_code == 302
    form = db.session.scalar(select(LeadForm))
    cover = client.get(f"/{institution.slug}/f/{form.code}/cover")
    assert cover.headers["Content-Type"] == "image/png" and cover.data == png_bytes()
    page = client.get(f"/{institution.slug}/f/{form.code}").get_data(as_text=True)
    assert f'og:image" content="http://localhost/{institution.slug}/f/{form.code}/cover' in page
