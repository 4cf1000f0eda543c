from __future__ import annotations

import pytest

from app.extensions import db
from app.leads import services
from app.leads.models import LeadForm
from app.tenancy import bind_institution, unbind_institution


def make_form(institution, **overrides) -> LeadForm:
    values = dict(
        title="Spring open day",
        intro="Meet our teachers",
        fields=[
            *services.default_fields(),
            {"key": "subject", "required": True, "label": ""},
            {
                "key": "custom_1",
                "kind": "single_choice",
                "label": "Best day",
                "choices": ["Saturday", "Sunday"],
                "required": False,
            },
            {
                "key": "custom_2",
                "kind": "multi_choice",
                "label": "Interests",
                "choices": ["Maths", "Art", "Music"],
                "required": False,
            },
        ],
        consent_text="I agree to be contacted about courses.",
        thank_you_message=None,
        redirect_url=None,
        is_open=True,
        closes_at=None,
        submission_cap=None,
    )
    values.update(overrides)
    bind_institution(institution)
    try:
        form = services.save_form(institution, None, **values)
    finally:
        unbind_institution()
    db.session.commit()
    return form


@pytest.fixture
def lead_form(institution, owner) -> LeadForm:
    return make_form(institution)
