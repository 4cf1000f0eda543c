"""loyalty: forms."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    InputRequired,
    Length,
    NumberRange,
    ValidationError,
)

from app.forms import CohortForm, ShownNumber, one_time_key, strip_filter
from app.loyalty.models import REWARD_KIND_LABELS, RewardKind

MAX_POINTS = 100_000  # one rule, price or grant; far above anything a school gives


def _points(label, description=None, low: int = 0):
    return IntegerField(
        label,
        description=description,
        validators=[InputRequired(), NumberRange(low, MAX_POINTS)],
    )


class PointsRulesForm(CohortForm):
    per_checkin = _points(_l("Points per daily check-in"))
    streak_7 = _points(_l("Bonus for a 7-day streak"))
    streak_21 = _points(_l("Bonus for a 21-day streak"))
    streak_30 = _points(_l("Bonus for a 30-day streak"))
    per_referral = _points(
        _l("Points per referral"),
        _l("Given to the family who brought a new family that registers or pays."),
    )

    def values(self) -> dict:
        return {
            name: self[name].data
            for name in ("per_checkin", "streak_7", "streak_21", "streak_30", "per_referral")
        }


class RewardForm(CohortForm):
    title = StringField(
        _l("Name"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    kind = SelectField(
        _l("Kind"),
        choices=[SelectChoice(kind.value, label) for kind, label in REWARD_KIND_LABELS.items()],
        default=RewardKind.OTHER.value,
    )
    description = TextAreaField(
        _l("Description (optional)"),
        filters=[strip_filter],
        validators=[Length(max=2000)],
        description=_l("What the family gets, and how to collect it."),
    )
    points_price = _points(_l("Price in points"), low=1)
    stock = _points(
        _l("Units in stock"), _l("Each redemption takes one; at zero it shows as sold out.")
    )
    is_active = BooleanField(_l("Offered to families"), default=True)

    def values(self) -> dict:
        return {
            "title": self.title.data,
            "kind": RewardKind(self.kind.data),
            "description": self.description.data or None,
            "points_price": self.points_price.data,
            "stock": self.stock.data,
            "is_active": self.is_active.data,
        }


class NewRewardForm(RewardForm):
    # A fresh key in each form shown: a double click on Save makes one reward.
    key = one_time_key()


class EditRewardForm(RewardForm):
    """A reward's edit form, with the stock the page showed: the service applies the
    change staff made to it, not the figure typed, since families may have redeemed units
    while the form was open (services.update_reward)."""

    stock_seen = ShownNumber()


class RedeemForm(CohortForm):
    """The family's Redeem button, with the price its confirmation showed."""

    price_seen = ShownNumber()


class GrantPointsForm(CohortForm):
    amount = IntegerField(
        _l("Points"),
        description=_l("A negative number takes points away."),
        validators=[InputRequired(), NumberRange(-MAX_POINTS, MAX_POINTS)],
    )
    note = StringField(
        _l("Reason (the family sees it)"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=200)],
    )
    # A fresh key in each form shown: the same form sent twice adds its points once.
    key = one_time_key()

    def validate_amount(self, field) -> None:
        if field.data == 0:
            raise ValidationError(_l("Give or take at least one point."))
