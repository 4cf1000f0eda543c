from __future__ import annotations

import re
import secrets

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    HiddenField,
    IntegerField,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.campaigns.models import MAX_TEAM_HOURS
from app.contacts.forms import FamilyForm, ParentForm
from app.forms import (
    CardFields,
    CohortForm,
    CoverFields,
    Honeypot,
    MoneyField,
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
    list_price = MoneyField(
        _l("List price"), validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    group_price = MoneyField(
        _l("Group price"), validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    leader_price = MoneyField(
        _l("Leader's price (optional)"),
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
    is_charged_at_once = BooleanField(
        _l("Charge at once"),
        description=_l(
            "Charge at once, refund automatically if the team does not fill — needed for "
            "WeChat Pay and Alipay, which cannot hold money. Unticked, the card is only held "
            "and charged when the team fills."
        ),
    )


class JoinForm(CardFields, Honeypot, FamilyForm):
    """A parent opening or joining a team; the card fields only in test mode."""

    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )


# --- flash sales (秒杀) ----------------------------------------------------------------------

ATTEMPT_KEY = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


class FlashSaleForm(CoverFields, CohortForm):
    title = StringField(
        _l("Title"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    description = TextAreaField(
        _l("Description"), filters=[strip_filter], validators=[Length(max=4000)]
    )
    # One of the institution's courses (the view gives the choices): the service takes
    # the id as it is.
    course_id = SelectField(_l("Course sold"), coerce=int)
    list_price = MoneyField(
        _l("List price"), validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    sale_price = MoneyField(
        _l("Sale price"), validators=[DataRequired(), NumberRange(0.01, 1_000_000)]
    )
    stock = IntegerField(
        _l("Seats for sale"),
        default=10,
        validators=[DataRequired(), NumberRange(1, 100_000)],
        description=_l("Can be raised later, never lowered below the seats sold or reserved."),
    )
    starts_at = local_datetime_field(_l("Sale starts"))
    ends_at = local_datetime_field(_l("Sale ends"))
    per_family_limit = IntegerField(
        _l("Seats per family"), default=1, validators=[DataRequired(), NumberRange(1, 10)]
    )
    pay_minutes = IntegerField(
        _l("Minutes to pay"),
        default=10,
        validators=[DataRequired(), NumberRange(2, 60)],
        description=_l("A seat not paid within this time goes back on sale."),
    )


class FlashBuyForm(Honeypot, FamilyForm):
    """A parent taking a seat in a flash sale (paid for next, within the sale's minutes:
    `FlashPayForm`).

    `attempt` is the buyer's attempt key: the page is kept in a cache and shared by every
    visitor, so the server cannot write a key of the visitor's own into it; a script
    (static/js/flash_sale.js) makes one in the browser when the page loads, and a tap sent
    twice carries the same one. A missing or malformed key is replaced by a random one."""

    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )
    attempt = HiddenField(render_kw={"data-attempt": ""})

    def attempt_key(self) -> str:
        key = self.attempt.data or ""
        return key if ATTEMPT_KEY.match(key) else secrets.token_urlsafe(16)


class FlashPayForm(CardFields, CohortForm):
    """Paying for a seat taken; the card fields only in test mode (with real Stripe the
    button leads to the Payment Element)."""


class FlashRemindForm(Honeypot, ParentForm):
    """A parent asking to be told when a sale starts."""

    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )
