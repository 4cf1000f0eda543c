from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import RadioField, SelectChoice, StringField
from wtforms.validators import DataRequired, Length

from app.forms import strip_filter


class SignInForm(FlaskForm):
    phone = StringField(
        _l("Your phone number"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=32)],
        render_kw={"type": "tel", "inputmode": "tel", "autocomplete": "tel"},
    )
    channel = RadioField(
        _l("Send the link by"),
        choices=[SelectChoice("sms", _l("Text message")), SelectChoice("email", _l("E-mail"))],
        default="sms",
    )
