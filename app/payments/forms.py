from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from app.forms import strip_filter


def _secret_field(label, pattern: str, message) -> PasswordField:
    """A secret: written, never shown again; left empty, the stored one stays."""
    return PasswordField(
        label,
        filters=[strip_filter],
        validators=[Optional(), Length(max=255), Regexp(pattern, message=message)],
        description=_l("Stored on our servers and never shown again. Leave empty to keep it."),
    )


class StripeSettingsForm(FlaskForm):
    publishable_key = StringField(
        _l("Publishable key"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=255), Regexp(r"^pk_", message=_l("Starts with pk_."))],
    )
    secret_key = _secret_field(_l("Secret key"), r"^(sk|rk)_", _l("Starts with sk_ or rk_."))
    connected_account_id = StringField(
        _l("Connected account"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Length(max=255),
            Regexp(r"^acct_", message=_l("Starts with acct_.")),
        ],
        description=_l("Instead of your own keys: the account id Cohort connected for you."),
    )
    webhook_secret = _secret_field(
        _l("Webhook signing secret"), r"^whsec_", _l("Starts with whsec_.")
    )

    def validate_connected_account_id(self, field):
        if field.data and self.secret_key.data:
            raise ValidationError(_l("Give either your own secret key or a connected account."))


class CardForm(FlaskForm):
    """The test-mode card (localstripe only; Stripe.js collects real cards)."""

    card_number = StringField(
        _l("Card number"),
        filters=[lambda v: "".join((v or "").split())],
        default="4242 4242 4242 4242",
        validators=[DataRequired(), Regexp(r"^\d{16}$", message=_l("Enter the 16 digits."))],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-number"},
    )
    card_expiry = StringField(
        _l("Expiry (MM/YY)"),
        filters=[strip_filter],
        default="12/30",
        validators=[
            DataRequired(),
            Regexp(r"^(0[1-9]|1[0-2])/\d{2}$", message=_l("Write it as MM/YY.")),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-exp"},
    )
    card_cvc = StringField(
        _l("CVC"),
        filters=[strip_filter],
        default="123",
        validators=[DataRequired(), Regexp(r"^\d{3}$", message=_l("Three digits."))],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-csc"},
    )

    def card(self) -> tuple[str, int, int, str]:
        month, year = self.card_expiry.data.split("/")
        return self.card_number.data, int(month), 2000 + int(year), self.card_cvc.data
