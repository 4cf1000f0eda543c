"""Form pieces shared by every domain."""

from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import PasswordField, SelectMultipleField
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError
from wtforms.widgets import CheckboxInput, ListWidget

from app.phones import e164

PASSWORD_MIN = 10


class ConfirmForm(FlaskForm):
    """A form with no fields: a button that POSTs with a CSRF token."""


class MultiCheckboxField(SelectMultipleField):
    """Several choices as a list of checkboxes."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


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
    number = e164(raw, region)
    if number is None:
        raise ValidationError(_l("Enter a valid phone number."))
    return number


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value
