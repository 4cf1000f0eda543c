from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import RadioField, SelectChoice

from app.forms import CohortForm, phone_field


class SignInForm(CohortForm):
    phone = phone_field(_l("Your phone number"))
    channel = RadioField(
        _l("Send the link by"),
        choices=[SelectChoice("sms", _l("Text message")), SelectChoice("email", _l("E-mail"))],
        default="sms",
    )
