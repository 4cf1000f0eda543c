"""The leads board moves a card by drag and drop: the page's script sends the card's own
form (CSRF token included) asking for JSON; the server moves the lead, or refuses with a
message and changes nothing. And the lead page's lost reason starts empty."""

from __future__ import annotations

import re

from sqlalchemy import select

from app.accounts.models import Role
from app.contacts.models import ContactEvent, EventKind
from app.extensions import db
from app.leads.models import Stage
from tests.factories import make_institution, make_lead, make_member
from tests.helpers import login, staff_base

JSON = {"Accept": "application/json"}


def lead_events(lead) -> list[dict]:
    return [
        e.data
        for e in db.session.scalars(
            select(ContactEvent)
            .where(ContactEvent.contact_id == lead.contact_id, ContactEvent.kind == EventKind.LEAD)
            .order_by(ContactEvent.id)
        )
    ]


def csrf_token_of_card(page: str, lead) -> str:
    card = re.search(rf'data-lead="{lead.id}".*?</article>', page, re.S).group(0)
    return re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', card).group(1)


def test_the_board_shows_every_stage_as_a_column_with_movable_cards(owner_client, institution):
    lead = make_lead(institution)
    page = owner_client.get(f"{staff_base(institution)}/leads/board").get_data(as_text=True)
    assert [s.value for s in Stage] == re.findall(
        r'class="board-column[^"]*" data-stage="(\w+)"', page
    )
    assert f'data-lead="{lead.id}"' in page and "board-card is-movable" in page
    assert f'action="/staff/{institution.slug}/leads/{lead.id}/stage"' in page
    assert "sortablejs-1.15.7/Sortable.min.js" in page and "js/board.js" in page


def test_a_dropped_card_sends_its_form_with_csrf_and_moves_the_lead(
    app, owner_client, institution, owner, monkeypatch
):
    monkeypatch.setitem(app.config, "WTF_CSRF_ENABLED", True)
    lead = make_lead(institution)
    url = f"{staff_base(institution)}/leads/{lead.id}/stage"
    refused = owner_client.post(url, data={"stage": "contacted", "back": "board"}, headers=JSON)
    assert refused.status_code == 400 and refused.json["error"] == "bad_request"  # no token

    page = owner_client.get(f"{staff_base(institution)}/leads/board").get_data(as_text=True)
    data = {"csrf_token": csrf_token_of_card(page, lead), "back": "board", "stage": "contacted"}
    response = owner_client.post(url, data=data, headers=JSON)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.json == {
        "stage": "contacted",
        "label": "Contacted",
        "message": "Moved to Contacted.",
    }
    db.session.refresh(lead)
    assert lead.stage == Stage.CONTACTED
    (created, moved) = lead_events(lead)
    assert moved["from"] == "new" and moved["to"] == "contacted"


def test_a_refused_drop_answers_the_message_and_changes_nothing(owner_client, institution):
    lead = make_lead(institution)
    url = f"{staff_base(institution)}/leads/{lead.id}/stage"
    events = lead_events(lead)

    response = owner_client.post(url, data={"stage": "lost"}, headers=JSON)
    assert response.status_code == 422
    assert response.json == {
        "error": "lost_reason",
        "field": "lost_reason",
        "message": "Choose why the family was lost.",
    }
    bogus = owner_client.post(url, data={"stage": "won"}, headers=JSON)
    assert bogus.status_code == 422 and bogus.json["error"] == "invalid"
    db.session.refresh(lead)
    assert lead.stage == Stage.NEW and lead_events(lead) == events

    with_reason = {"stage": "lost", "lost_reason": "Price"}
    assert owner_client.post(url, data=with_reason, headers=JSON).json["stage"] == "lost"
    db.session.refresh(lead)
    assert (lead.stage, lead.lost_reason) == (Stage.LOST, "Price")

    lead.stage = Stage.ENROLLED
    db.session.commit()
    final = owner_client.post(url, data={"stage": "new"}, headers=JSON)
    assert final.status_code == 422 and final.json["error"] == "final"
    assert final.json["message"] == "An enrolled family stays enrolled."


def test_a_drop_on_another_institutions_lead_is_404(client, institution):
    lead = make_lead(institution)
    other = make_institution()
    login(client, make_member(other, Role.OWNER))
    for slug in (other.slug, institution.slug):
        url = f"/staff/{slug}/leads/{lead.id}/stage"
        response = client.post(url, data={"stage": "contacted"}, headers=JSON)
        assert response.status_code == 404 and response.json["error"] == "not_found"
    db.session.refresh(lead)
    assert lead.stage == Stage.NEW and len(lead_events(lead)) == 1


def test_the_lead_page_starts_without_a_lost_reason_and_needs_one(owner_client, institution):
    lead = make_lead(institution)
    page = owner_client.get(f"{staff_base(institution)}/leads/{lead.id}").get_data(as_text=True)
    select_html = re.search(r'<select[^>]*name="lost_reason".*?</select>', page, re.S).group(0)
    assert re.search(r'<option value="">Choose a reason</option>', select_html)
    assert "selected" not in select_html  # the browser shows the first, empty option

    response = owner_client.post(
        f"{staff_base(institution)}/leads/{lead.id}/stage",
        data={"stage": "lost", "lost_reason": ""},
    )
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    field = re.search(r'<div class="field[^"]*has-error">.*?</div>', page, re.S).group(0)
    assert 'name="lost_reason"' in field and "Choose why the family was lost." in field
    db.session.refresh(lead)
    assert lead.stage == Stage.NEW and lead.lost_reason is None and lead.closed_at is None
    assert len(lead_events(lead)) == 1
