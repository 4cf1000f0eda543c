from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    PasswordField,
    SelectChoice,
    SelectField,
    StringField,
)
from wtforms.validators import DataRequired, Email, Length

from app.accounts.models import Role
from app.forms import CohortForm, password_fields, strip_filter


def email_field(label=None):
    return EmailField(
        label or _l("E-mail"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )


class LoginForm(CohortForm):
    email = email_field()
    password = PasswordField(_l("Password"), validators=[DataRequired(), Length(max=128)])
    remember = BooleanField(_l("Keep me signed in on this device"))


class ForgotPasswordForm(CohortForm):
    email = email_field()


class ResetPasswordForm(CohortForm):
    password, confirm = password_fields()


class AcceptInvitationForm(CohortForm):
    name = StringField(
        _l("Your name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    password, confirm = password_fields()


class InviteForm(CohortForm):
    email = email_field(_l("E-mail of the person to invite"))
    role = SelectField(_l("Role"), default=Role.STAFF.value)

    def limit_roles(self, roles: list[Role]) -> None:
        self.role.choices = [SelectChoice(role.value, role.label) for role in roles]


class RoleForm(CohortForm):
    role = SelectField(_l("Role"), choices=[SelectChoice(role.value, role.label) for role in Role])
