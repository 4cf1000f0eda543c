"""The dashboard's pages, for every member of staff of the signed-in institution.

The home page is the staff home (`/staff/<slug>/`): its address is the institutions
domain's endpoint `institutions.home`, which create_app points at `home` below, so that no
domain imports the dashboard. The other pages live under `/staff/<slug>/dashboard/`. Every
page takes the period from its query string (PeriodForm), and every table on it exports
to CSV through `export` with the same arguments.
"""

from __future__ import annotations

from flask import Response, abort, current_app, render_template, request
from flask_babel import gettext as _
from flask_login import current_user

from app.csvfile import csv_response
from app.dashboard import charts, queries, reports
from app.dashboard.forms import PeriodForm
from app.dashboard.models import Period
from app.dashboard.queries import DIMENSIONS, STAGES
from app.db import utcnow
from app.tenancy import current_institution, staff_blueprint

staff = staff_blueprint("dashboard", __name__)
BLUEPRINTS = [staff]


def _period() -> tuple[PeriodForm, Period]:
    form = PeriodForm(request.args)
    return form, form.period(queries.local_today(current_institution(), utcnow()))


def _home_page(period: Period) -> reports.Page:
    institution, now = current_institution(), utcnow()
    page = reports.home(institution, period)
    today = queries.today(institution, current_user.id, now)
    page.add(reports.lessons_table(institution, today))
    page.add(reports.campaigns_table(queries.live_campaigns(institution, now), now))
    page.today = today
    return page


def home():
    """Today's work, the period's figures against the period before, live campaigns; an
    institution without any family yet sees its next steps instead of zeros."""
    institution = current_institution()
    form, period = _period()
    steps = queries.next_steps(institution)
    page = _home_page(period)
    return render_template(
        "dashboard/home.html",
        form=form,
        period=period,
        page=page,
        today=page.today,
        steps=steps,
        empty=not steps["has_families"],
        series=queries.SERIES,
        series_names=reports.SERIES_NAMES,
        local_today=queries.local_today(institution, utcnow()),
    )


@staff.get("/dashboard/funnel")
def funnel():
    """Families first seen in the period, stage by stage, in total and by source, form,
    campaign and staff member; lost leads by reason."""
    form, period = _period()
    return render_template(
        "dashboard/funnel.html",
        form=form,
        period=period,
        page=reports.funnel(current_institution(), period),
        stages=STAGES,
        stage_names=reports.STAGE_NAMES,
        dimensions=DIMENSIONS,
    )


def _families_args() -> tuple[int, str, str]:
    stage = request.args.get("stage", STAGES[0])
    dimension = request.args.get("dimension", "")
    if stage not in STAGES or dimension not in ("", "lost", *DIMENSIONS):
        abort(404)
    return STAGES.index(stage), dimension, request.args.get("key", "")[:200]


@staff.get("/dashboard/funnel/families")
def funnel_families():
    """The families behind one number of the funnel."""
    form, period = _period()
    stage, dimension, key = _families_args()
    institution = current_institution()
    labels = queries.dimension_labels(institution, dimension, [key])
    return render_template(
        "dashboard/families.html",
        form=form,
        period=period,
        page=reports.families(institution, period, stage, dimension, key),
        stage_name=reports.STAGE_NAMES[STAGES[stage]],
        dimension_name=(
            _("Lost leads by reason")
            if dimension == "lost"
            else reports.DIMENSION_NAMES.get(dimension, "")
        ),
        key_name=reports.key_label(dimension, key, labels) if dimension else "",
        limit=queries.FAMILIES_LIMIT,
    )


@staff.get("/dashboard/community")
def community():
    """Groups' active members, posts and announcement reads; camps' check-in rates; the
    weekly join cohorts' retention."""
    form, period = _period()
    institution = current_institution()
    return render_template(
        "dashboard/community.html",
        form=form,
        period=period,
        page=reports.community(institution, period, queries.local_today(institution, utcnow())),
    )


PAGES = ("home", "funnel", "families", "community")


@staff.get("/dashboard/export.csv")
def export():
    """One table of a dashboard page as CSV: ?page=<home|funnel|families|community>&table=
    <name>, with the page's own arguments (period, and which families)."""
    institution = current_institution()
    _form, period = _period()
    name = request.args.get("page", "home")
    if name == "home":
        page = _home_page(period)
    elif name == "funnel":
        page = reports.funnel(institution, period)
    elif name == "families":
        page = reports.families(institution, period, *_families_args())
    elif name == "community":
        page = reports.community(institution, period, queries.local_today(institution, utcnow()))
    else:
        abort(404)
    table = page.tables.get(request.args.get("table") or next(iter(page.tables)))
    if table is None:
        abort(404)
    header, rows = table.csv(institution.currency)
    filename = f"{institution.slug}-{name}-{table.name}-{period.start}-{period.end}.csv"
    return csv_response(filename, header, rows)


@staff.get("/dashboard/charts.css")
def chart_css():
    """The charts' styling (see app.dashboard.charts: not inline, for the CSP) and the
    dashboard's layout."""
    css = charts.stylesheet() + "\n" + render_template("dashboard/dashboard.css")
    response = Response(css, mimetype="text/css")
    response.cache_control.private = True
    response.cache_control.max_age = 0 if current_app.debug else 3600
    return response
