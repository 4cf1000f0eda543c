"""Forms of VIP memberships: a tier (staff), a grant (staff) and buying one (the family)."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.forms import (
    CardFields,
    CohortForm,
    MoneyField,
    ShownNumber,
    one_time_key,
    strip_filter,
)
from app.memberships.models import MAX_DAYS


class TierForm(CohortForm):
    name = StringField(
        _l("Name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    price = MoneyField(
        _l("Price"),
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


class NewTierForm(TierForm):
    # A fresh key in each form shown: a double click on Save makes one tier.
    key = one_time_key()


class GrantForm(CohortForm):
    """Staff give a family a membership; the tier's choices are set by the view."""

    tier_id = SelectField(_l("Tier"), coerce=int, validators=[DataRequired()])
    days = IntegerField(
        _l("Days"),
        validators=[Optional(), NumberRange(1, MAX_DAYS)],
        description=_l("Leave empty for the tier's own length."),
    )
    # A fresh key in each form shown: the same form sent twice grants once.
    key = one_time_key()


class BuyForm(CardFields, CohortForm):
    """Buying a paid tier: the card fields only with the test card checkout, and the price
    and days the page showed (a tier changed since is refused: services.start_purchase)."""

    price_seen = ShownNumber()
    days_seen = ShownNumber()

    def show(self, tier) -> None:
        """Carry the tier as the page shows it now."""
        self.price_seen.show(tier.price_amount)
        self.days_seen.show(tier.duration_days)
