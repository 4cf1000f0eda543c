"""Parallel submissions against a real database: one family stays one record, a capped
form never takes more than its cap."""

from __future__ import annotations

from collections import Counter

import pytest
from sqlalchemy import func, select

from app.contacts.models import Contact
from app.extensions import db
from app.leads import services
from app.leads.models import FormSubmission, Lead, LeadForm
from app.tenancy import bound
from tests.factories import make_form, make_member
from tests.helpers import committed_data, committed_institution, run_in_parallel

ANSWERS = {"parent_name": "Wang Fang", "child_name": "Leo", "subject": "Maths", "consent": "y"}


def count(model, institution_id) -> int:
    return db.session.scalar(
        select(func.count()).select_from(model).where(model.institution_id == institution_id)
    )


def setup_school(made, **form_options) -> tuple[int, list[str]]:
    """A committed institution with two forms: its id and the forms' public URLs."""
    institution = committed_institution(made)
    forms = [make_form(institution, **form_options) for _ in range(2)]
    result = institution.id, [f"/{institution.slug}/f/{form.code}" for form in forms]
    # End this session's transaction before the race: on SQLite it would hold the lock.
    db.session.remove()
    return result


def post(app, url, data, n):
    client = app.test_client()
    return client.post(url, data=data, environ_base={"REMOTE_ADDR": f"10.20.{n // 250}.{n % 250}"})


@pytest.mark.committed
def test_parallel_submissions_of_one_family_make_one_contact_and_one_lead(app):
    with committed_data() as made:
        institution_id, urls = setup_school(made)
        phones = ["138 0013 8000", "+86 13800138000", "13800138000", "+8613800138000"]

        results = run_in_parallel(
            12, lambda n: post(app, urls[n % 2], {**ANSWERS, "phone": phones[n % 4]}, n).status_code
        )

        assert results == [302] * 12
        db.session.expire_all()
        assert count(Contact, institution_id) == 1
        assert count(Lead, institution_id) == 1
        # One submission per form: the rest fall inside the double-submit window.
        assert count(FormSubmission, institution_id) == 2


@pytest.mark.committed
def test_a_capped_form_never_takes_more_than_its_cap(app):
    with committed_data() as made:
        institution_id, (url, _other) = setup_school(made, submission_cap=5)

        results = run_in_parallel(
            20, lambda n: post(app, url, {**ANSWERS, "phone": f"1390013{n:04d}"}, n).status_code
        )

        assert sorted(results) == [302] * 5 + [410] * 15
        db.session.expire_all()
        assert count(FormSubmission, institution_id) == 5
        assert count(Contact, institution_id) == 5
        # The school's other form took nothing, so the sum is this form's own count.
        total = db.session.scalar(
            select(func.sum(LeadForm.submission_count)).where(
                LeadForm.institution_id == institution_id
            )
        )
        assert total == 5


@pytest.mark.committed
def test_a_rush_of_new_families_is_shared_among_the_round_robin(app):
    with committed_data() as made:
        institution = committed_institution(made)
        staff = [make_member(institution).id for _ in range(3)]
        made["users"].extend(staff)
        with bound(institution):
            services.set_round_robin(institution, staff)
        institution_id, url = institution.id, f"/{institution.slug}/f/{make_form(institution).code}"
        db.session.commit()
        db.session.remove()

        # More families at once than there are staff: some requests find every one of
        # them held by another request and wait for one.
        results = run_in_parallel(
            12, lambda n: post(app, url, {**ANSWERS, "phone": f"1370013{n:04d}"}, n).status_code
        )

        assert results == [302] * 12
        db.session.expire_all()
        owners = Counter(
            db.session.scalars(select(Lead.owner_id).where(Lead.institution_id == institution_id))
        )
        assert sum(owners.values()) == 12
        assert set(owners) == set(staff)
