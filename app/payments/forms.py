from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import PasswordField, StringField
from wtforms.validators import Length, Optional, Regexp, ValidationError

from app.forms import CohortForm, strip_filter


def _secret_field(label, pattern: str, message) -> PasswordField:
    """A secret: written, never shown again; left empty, the stored one stays."""
    return PasswordField(
        label,
        filters=[strip_filter],
        validators=[Optional(), Length(max=255), Regexp(pattern, message=message)],
        description=_l("Stored on our servers and never shown again. Leave empty to keep it."),
    )


class StripeSettingsForm(CohortForm):
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
