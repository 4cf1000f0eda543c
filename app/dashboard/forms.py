"""The period a dashboard page shows: the last 7, 30 or 90 days, or chosen dates."""

from __future__ import annotations

from datetime import date, timedelta

from flask_babel import lazy_gettext as _l
from wtforms import DateField, SelectChoice, SelectField
from wtforms.validators import Optional

from app.dashboard.models import DEFAULT_DAYS, MAX_DAYS, PERIOD_DAYS, Period
from app.forms import CohortForm

CUSTOM = "custom"


class PeriodForm(CohortForm):
    """Read from the query string; nonsense falls back to the last 30 days, never an
    error page."""

    class Meta:
        csrf = False

    days = SelectField(
        _l("Period"),
        choices=[
            SelectChoice("7", _l("Last 7 days")),
            SelectChoice("30", _l("Last 30 days")),
            SelectChoice("90", _l("Last 90 days")),
            SelectChoice(CUSTOM, _l("Chosen dates")),
        ],
        default=str(DEFAULT_DAYS),
        validate_choice=False,
    )
    start = DateField(_l("From"), validators=[Optional()])
    end = DateField(_l("Until"), validators=[Optional()])

    def period(self, today: date) -> Period:
        """The period asked for: chosen dates when both are given (in order, ending no
        later than today, the last MAX_DAYS days of them at most), else the last N days up
        to today."""
        self.validate()
        start = None if self.start.errors else self.start.data
        end = None if self.end.errors else self.end.data
        if start and end:
            start, end = sorted((start, min(end, today)))
            self.days.data = CUSTOM
            return Period(max(start, end - timedelta(days=MAX_DAYS - 1)), end)
        days = int(self.days.data) if self.days.data in {str(d) for d in PERIOD_DAYS} else None
        self.days.data = str(days or DEFAULT_DAYS)
        return Period.last(days or DEFAULT_DAYS, today)
