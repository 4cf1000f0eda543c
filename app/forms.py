"""Form pieces shared by every domain."""

from __future__ import annotations

import phonenumbers
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

PASSWORD_MIN = 10


class ConfirmForm(FlaskForm):
    """A form with no fields: a button that POSTs with a CSRF token."""


def password_fields():
    """A password and its confirmation, with the same rules everywhere."""
    password = PasswordField(
        _l("Password"),
        validators=[DataRequired(), Length(min=PASSWORD_MIN, max=128)],
        description=_l("At least %(n)s characters.", n=PASSWORD_MIN),
    )
    confirm = PasswordField(
        _l("Repeat the password"),
        validators=[DataRequired(), EqualTo("password", message=_l("The passwords differ."))],
    )
    return password, confirm


def to_e164(raw: str, region: str) -> str:
    """A phone number in E.164 form, or ValidationError with a readable message."""
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException as exc:
        raise ValidationError(_l("Enter a valid phone number.")) from exc
    if not phonenumbers.is_valid_number(number):
        raise ValidationError(_l("Enter a valid phone number."))
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value
