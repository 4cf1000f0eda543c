from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from app.db import scoped_select
from app.extensions import db
from app.leads.models import (
    FormSourceStat,
    FormSubmission,
    Lead,
    LeadAssignee,
    LeadForm,
    Stage,
)
from app.localtime import local_day_start


@dataclass
class LeadFilters:
    stage: Stage | None = None
    owner_id: int | None = None
    form_id: int | None = None
    source: str = ""
    created_from: date | None = None
    created_to: date | None = None


def filtered_leads(institution, filters: LeadFilters) -> Select:
    query = scoped_select(Lead, institution).options(
        selectinload(Lead.contact), selectinload(Lead.owner), selectinload(Lead.form)
    )
    if filters.stage:
        query = query.where(Lead.stage == filters.stage)
    if filters.owner_id:
        query = query.where(Lead.owner_id == filters.owner_id)
    if filters.form_id:
        query = query.where(Lead.form_id == filters.form_id)
    if filters.source:
        query = query.where(Lead.source == filters.source)
    if filters.created_from:
        query = query.where(
            Lead.created_at >= local_day_start(filters.created_from, institution.zone)
        )
    if filters.created_to:
        query = query.where(
            Lead.created_at
            < local_day_start(filters.created_to + timedelta(days=1), institution.zone)
        )
    return query.order_by(Lead.created_at.desc(), Lead.id.desc())


def board(institution, filters: LeadFilters, per_column: int = 50) -> dict[Stage, list[Lead]]:
    """Leads by stage for the board, newest first, at most `per_column` each."""
    columns = {}
    for stage in Stage:
        query = filtered_leads(institution, LeadFilters(**{**filters.__dict__, "stage": stage}))
        columns[stage] = db.session.scalars(query.limit(per_column)).all()
    return columns


def follow_ups_due(institution, user_id: int, now: datetime) -> list[Lead]:
    """The user's open leads to contact by the end of today (institution time), overdue
    first."""
    zone = institution.zone
    today_end = local_day_start(now.astimezone(zone).date() + timedelta(days=1), zone)
    return db.session.scalars(
        scoped_select(Lead, institution)
        .options(selectinload(Lead.contact))
        .where(
            Lead.owner_id == user_id,
            Lead.stage.not_in([Stage.ENROLLED, Stage.LOST]),
            Lead.next_contact_at < today_end,
        )
        .order_by(Lead.next_contact_at)
    ).all()


def all_forms(institution) -> list[LeadForm]:
    return db.session.scalars(
        scoped_select(LeadForm, institution).order_by(LeadForm.created_at.desc())
    ).all()


def form_by_code(institution, code: str) -> LeadForm | None:
    return db.session.scalar(
        select(LeadForm).where(LeadForm.institution_id == institution.id, LeadForm.code == code)
    )


def source_stats(form: LeadForm) -> list[FormSourceStat]:
    return db.session.scalars(
        select(FormSourceStat)
        .where(
            FormSourceStat.institution_id == form.institution_id,
            FormSourceStat.form_id == form.id,
        )
        .order_by(FormSourceStat.views.desc())
    ).all()


def submissions(form: LeadForm, limit: int | None = 200) -> list[FormSubmission]:
    query = (
        select(FormSubmission)
        .where(
            FormSubmission.institution_id == form.institution_id,
            FormSubmission.form_id == form.id,
        )
        .options(selectinload(FormSubmission.contact))
        .order_by(FormSubmission.created_at.desc())
    )
    if limit:
        query = query.limit(limit)
    return db.session.scalars(query).all()


def contact_ids_in_stage(institution, stage: Stage) -> Select:
    """The ids of the institution's contacts with a lead in `stage` (a subquery for the
    contacts list)."""
    return select(Lead.contact_id).where(Lead.institution_id == institution.id, Lead.stage == stage)


def leads_by_ids(institution, lead_ids: list[int]) -> list[Lead]:
    """The institution's leads among these ids (others' ids are ignored)."""
    return list(db.session.scalars(scoped_select(Lead, institution).where(Lead.id.in_(lead_ids))))


def round_robin_user_ids(institution) -> list[int]:
    return list(
        db.session.scalars(
            select(LeadAssignee.user_id).where(LeadAssignee.institution_id == institution.id)
        )
    )


def form_titles(institution_id: int, codes: list[str]) -> dict[str, str]:
    """{form code: title} of the institution's forms among `codes` (what a contact's
    touches name)."""
    if not codes:
        return {}
    rows = db.session.execute(
        select(LeadForm.code, LeadForm.title).where(
            LeadForm.institution_id == institution_id, LeadForm.code.in_(codes)
        )
    )
    return dict(rows.all())


def contact_leads(contact) -> list[Lead]:
    """The family's leads, newest first (one open at most, and the closed ones)."""
    return list(
        db.session.scalars(
            select(Lead)
            .where(Lead.institution_id == contact.institution_id, Lead.contact_id == contact.id)
            .order_by(Lead.created_at.desc(), Lead.id.desc())
        )
    )
