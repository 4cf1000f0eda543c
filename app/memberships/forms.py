"""Forms of VIP memberships: a tier (staff), a grant (staff) and buying one (the family)."""

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

from app.forms import CardFields, CohortForm, strip_filter
from app.memberships.models import MAX_DAYS


class TierForm(CohortForm):
    name = StringField(
        _l("Name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    price = DecimalField(
        _l("Price"),
        places=2,
        default=0,
        validators=[NumberRange(0, 1_000_000)],
        description=_l("0 for a tier that only staff grant. Families buy a paid tier online."),
    )
    duration_days = IntegerField(
        _l("Days"), default=365, validators=[DataRequired(), NumberRange(1, MAX_DAYS)]
    )
    perks = TextAreaField(
        _l("Perks"),
        filters=[strip_filter],
        validators=[Length(max=2000)],
        description=_l("What a member gets, shown on the family's page."),
    )
    is_active = BooleanField(_l("Offered"), default=True)


class GrantForm(CohortForm):
    """Staff give a family a membership; the tier's choices are set by the view."""

    tier_id = SelectField(_l("Tier"), coerce=int, validators=[DataRequired()])
    days = IntegerField(
        _l("Days"),
        validators=[Optional(), NumberRange(1, MAX_DAYS)],
        description=_l("Leave empty for the tier's own length."),
    )


class BuyForm(CardFields, CohortForm):
    """Buying a paid tier: the card fields only with the test card checkout."""
