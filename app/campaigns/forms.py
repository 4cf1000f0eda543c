from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DecimalField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.campaigns.models import MAX_TEAM_HOURS
from app.contacts.forms import FamilyForm
from app.forms import (
    CardFields,
    CohortForm,
    CoverFields,
    Honeypot,
    local_datetime_field,
    strip_filter,
)


class GroupBuyForm(CoverFields, CohortForm):
    title = StringField(
        _l("Title"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    description = TextAreaField(
        _l("Description"), filters=[strip_filter], validators=[Length(max=4000)]
    )
    course_id = SelectField(_l("Course sold"), coerce=int, validate_choice=False)
    list_price = DecimalField(
        _l("List price"), places=2, validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    group_price = DecimalField(
        _l("Group price"), places=2, validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    leader_price = DecimalField(
        _l("Leader's price (optional)"),
        places=2,
        validators=[Optional(), NumberRange(0.01, 1_000_000)],
        description=_l("What the parent who opens a team pays, if less than the group price."),
    )
    team_size = IntegerField(
        _l("Families per team"), default=3, validators=[DataRequired(), NumberRange(2, 20)]
    )
    team_hours = IntegerField(
        _l("Hours to fill a team"),
        default=24,
        validators=[
            DataRequired(),
            NumberRange(
                1,
                MAX_TEAM_HOURS,
                message=_l("1 to %(max)s hours: card holds last about 7 days.", max=MAX_TEAM_HOURS),
            ),
        ],
        description=_l("Counted from the team's opening, and never past the campaign's end."),
    )
    starts_at = local_datetime_field(_l("Campaign starts"))
    ends_at = local_datetime_field(_l("Campaign ends"))
    team_limit = IntegerField(
        _l("Teams in all (optional)"), validators=[Optional(), NumberRange(1, 100_000)]
    )
    per_contact_limit = IntegerField(
        _l("Teams per family"), default=1, validators=[DataRequired(), NumberRange(1, 20)]
    )


class JoinForm(CardFields, Honeypot, FamilyForm):
    """A parent opening or joining a team; the card fields only in test mode."""

    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )
