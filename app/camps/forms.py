"""Forms of check-in camps: staff set a camp and its tasks; families check in."""

from __future__ import annotations

from datetime import time

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileAllowed, FileField
from wtforms import (
    BooleanField,
    DateField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from app.camps.models import MAX_CHECKIN_LENGTH
from app.forms import (
    CohortForm,
    MultiCheckboxField,
    pictures_field,
    strip_filter,
    uploaded_pictures,
)
from app.groups.models import MAX_POST_IMAGES

WEEKDAYS = [
    SelectChoice(0, _l("Monday")),
    SelectChoice(1, _l("Tuesday")),
    SelectChoice(2, _l("Wednesday")),
    SelectChoice(3, _l("Thursday")),
    SelectChoice(4, _l("Friday")),
    SelectChoice(5, _l("Saturday")),
    SelectChoice(6, _l("Sunday")),
]
TASK_FILE_TYPES = ["png", "jpg", "jpeg", "webp", "pdf", "mp3", "m4a", "docx", "xlsx"]
TASK_FILE_MAX_BYTES = 10 * 1024 * 1024


class CampForm(CohortForm):
    title = StringField(
        _l("Title"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    description = TextAreaField(
        _l("What the camp is about"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=2000)],
    )
    starts_on = DateField(_l("First day"), validators=[DataRequired()])
    ends_on = DateField(_l("Last day"), validators=[DataRequired()])
    weekdays = MultiCheckboxField(
        _l("Days it runs (none ticked: every day)"), coerce=int, choices=WEEKDAYS
    )
    window_start = TimeField(
        _l("Check-ins open at"), default=time(6, 0), validators=[DataRequired()]
    )
    window_end = TimeField(
        _l("Check-ins close at"), default=time(22, 0), validators=[DataRequired()]
    )
    nudge_at = TimeField(
        _l("Remind those who have not checked in at (empty: no reminder)"),
        default=time(20, 0),
        validators=[Optional()],
    )
    makeup_cards = IntegerField(
        _l("Make-up cards per child"), default=2, validators=[NumberRange(min=0, max=30)]
    )
    makeup_days = IntegerField(
        _l("A make-up card reaches back (days)"), default=3, validators=[NumberRange(min=1, max=30)]
    )

    def values(self) -> dict:
        return {
            "title": self.title.data,
            "description": self.description.data or None,
            "starts_on": self.starts_on.data,
            "ends_on": self.ends_on.data,
            "weekdays": sorted(set(self.weekdays.data or [])),
            "window_start": self.window_start.data,
            "window_end": self.window_end.data,
            "nudge_at": self.nudge_at.data,
            "makeup_cards": self.makeup_cards.data,
            "makeup_days": self.makeup_days.data,
        }


class TaskForm(CohortForm):
    day = DateField(_l("Day"), validators=[DataRequired()])
    prompt = TextAreaField(
        _l("The day's task"), filters=[strip_filter], validators=[DataRequired(), Length(max=2000)]
    )
    file = FileField(
        _l("A picture or a file to use (optional)"),
        validators=[FileAllowed(TASK_FILE_TYPES, _l("This kind of file cannot be attached."))],
    )


class CheckInForm(CohortForm):
    student = SelectField(_l("Child"), coerce=int, validate_choice=True)
    body = TextAreaField(
        _l("How it went"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=MAX_CHECKIN_LENGTH)],
    )
    pictures = pictures_field(MAX_POST_IMAGES)
    day = HiddenField()  # a make-up: the missed day, as YYYY-MM-DD

    def uploaded_pictures(self) -> list[bytes]:
        return uploaded_pictures(self.pictures)


class JoinCampForm(CohortForm):
    students = MultiCheckboxField(_l("Children taking part"), coerce=int)


class PrivacyForm(CohortForm):
    student = SelectField(_l("Child"), coerce=int, validate_choice=True)
    hides_name = BooleanField(_l("Hide my child's name on the leaderboard"))
