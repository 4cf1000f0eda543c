from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import Select, select
from sqlalchemy.orm import selectinload

from app.extensions import db
from app.leads.models import FormSourceStat, FormSubmission, Lead, LeadForm, Stage
from app.tenancy import current_institution, local_day_start, scoped_select


@dataclass
class LeadFilters:
    stage: Stage | None = None
    owner_id: int | None = None
    form_id: int | None = None
    source: str = ""
    created_from: date | None = None
    created_to: date | None = None


def filtered_leads(filters: LeadFilters) -> Select:
    query = scoped_select(Lead).options(
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
        query = query.where(Lead.created_at >= local_day_start(filters.created_from))
    if filters.created_to:
        query = query.where(
            Lead.created_at < local_day_start(filters.created_to + timedelta(days=1))
        )
    return query.order_by(Lead.created_at.desc(), Lead.id.desc())


def board(filters: LeadFilters, per_column: int = 50) -> dict[Stage, list[Lead]]:
    """Leads by stage for the board, newest first, at most `per_column` each."""
    columns = {}
    for stage in Stage:
        query = filtered_leads(LeadFilters(**{**filters.__dict__, "stage": stage}))
        columns[stage] = db.session.scalars(query.limit(per_column)).all()
    return columns


def follow_ups_due(user_id: int, now: datetime) -> list[Lead]:
    """The user's open leads to contact by the end of today (institution time), overdue
    first."""
    today_end = local_day_start(
        now.astimezone(current_institution().zone).date() + timedelta(days=1)
    )
    return db.session.scalars(
        scoped_select(Lead)
        .options(selectinload(Lead.contact))
        .where(
            Lead.owner_id == user_id,
            Lead.stage.not_in([Stage.ENROLLED, Stage.LOST]),
            Lead.next_contact_at < today_end,
        )
        .order_by(Lead.next_contact_at)
    ).all()


def all_forms() -> list[LeadForm]:
    return db.session.scalars(scoped_select(LeadForm).order_by(LeadForm.created_at.desc())).all()


def form_by_code(institution, code: str) -> LeadForm | None:
    return db.session.scalar(
        select(LeadForm).where(LeadForm.institution_id == institution.id, LeadForm.code == code)
    )


def source_stats(form: LeadForm) -> list[FormSourceStat]:
    return db.session.scalars(
        scoped_select(FormSourceStat)
        .where(FormSourceStat.form_id == form.id)
        .order_by(FormSourceStat.views.desc())
    ).all()


def submissions(form: LeadForm, limit: int | None = 200) -> list[FormSubmission]:
    query = (
        scoped_select(FormSubmission)
        .where(FormSubmission.form_id == form.id)
        .options(selectinload(FormSubmission.contact))
        .order_by(FormSubmission.created_at.desc())
    )
    if limit:
        query = query.limit(limit)
    return db.session.scalars(query).all()


def contact_ids_in_stage(stage: str) -> Select:
    """The ids of contacts with a lead in `stage`, as a subquery for the contacts list."""
    return select(Lead.contact_id).where(Lead.stage == Stage(stage))
