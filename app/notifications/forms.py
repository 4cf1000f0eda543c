from __future__ import annotations

import re

from flask_babel import lazy_gettext as _l
from wtforms import SelectChoice, SelectField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional, Regexp, ValidationError

from app.forms import CohortForm, MultiCheckboxField, strip_filter
from app.notifications.models import Channel

CHANNEL_LABELS = {
    Channel.EMAIL: _l("E-mail"),
    Channel.SMS: _l("Text message"),
    Channel.INAPP: _l("On the family's page"),
}


def _minutes_list(form, field):
    values = [part for part in re.split(r"[,，\s]+", field.data or "") if part]
    try:
        minutes = [int(value) for value in values]
    except ValueError as exc:
        raise ValidationError(_l("Write whole numbers of minutes, separated by commas.")) from exc
    if any(not 1 <= value <= 7 * 24 * 60 for value in minutes) or len(minutes) > 6:
        raise ValidationError(_l("Up to six reminders, each between 1 minute and 7 days before."))
    field.minutes = minutes


class ReminderSettingsForm(CohortForm):
    morning_time = StringField(
        _l("On the day of the lesson, at"),
        filters=[strip_filter],
        validators=[
            Optional(),
            Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", message=_l("Use HH:MM, for example 08:00.")),
        ],
        description=_l("Leave empty for no reminder on the morning of the lesson."),
    )
    minutes_before = StringField(
        _l("Minutes before the lesson"),
        filters=[strip_filter],
        validators=[Length(max=60), _minutes_list],
        description=_l("Separated by commas, for example: 60, 10."),
    )
    channels = MultiCheckboxField(
        _l("Send on"),
        choices=[SelectChoice(channel.value, label) for channel, label in CHANNEL_LABELS.items()],
        validators=[DataRequired(_l("Choose at least one channel."))],
    )


class MessageTemplateForm(CohortForm):
    subject = StringField(
        _l("Subject line"), filters=[strip_filter], validators=[DataRequired(), Length(max=200)]
    )
    body = TextAreaField(
        _l("Text"), filters=[strip_filter], validators=[DataRequired(), Length(max=2000)]
    )
    action = SelectField(
        choices=[SelectChoice("save", "save"), SelectChoice("preview", "preview")],
        default="save",
    )


class OutboxFilterForm(CohortForm):
    class Meta:
        csrf = False

    status = SelectField(_l("Status"), validate_choice=False)
    channel = SelectField(_l("Channel"), validate_choice=False)
    kind = SelectField(_l("Kind"), validate_choice=False)
    recipient = StringField(_l("Recipient"), filters=[strip_filter], validators=[Length(max=254)])
