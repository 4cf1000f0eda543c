from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    EmailField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import URL, DataRequired, Email, Length, NumberRange, Optional

from app.courses.models import KIND_LABELS
from app.forms import MultiCheckboxField, strip_filter
from app.payments.forms import CardForm

DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]
IMAGE_TYPES = FileAllowed(
    ["png", "jpg", "jpeg", "webp"], _l("The image must be a PNG, JPEG or WebP file.")
)


class CourseForm(FlaskForm):
    title = StringField(
        _l("Title"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    kind = SelectField(
        _l("Kind"), choices=[SelectChoice(k.value, v) for k, v in KIND_LABELS.items()]
    )
    subject = StringField(_l("Subject"), filters=[strip_filter], validators=[Length(max=60)])
    grade_range = StringField(
        _l("Grades"),
        filters=[strip_filter],
        validators=[Length(max=60)],
        description=_l("For example: Grades 3–5, ages 6–8."),
    )
    description = TextAreaField(
        _l("Description"), filters=[strip_filter], validators=[Length(max=4000)]
    )
    cover = FileField(
        _l("Cover picture"),
        validators=[IMAGE_TYPES],
        description=_l("PNG, JPEG or WebP, at most 1 MB. Shown on the page and in link previews."),
    )
    remove_cover = BooleanField(_l("Remove the cover picture"))
    teacher_id = SelectField(_l("Teacher"), default="")
    price = DecimalField(
        _l("Price"),
        places=2,
        default=0,
        validators=[NumberRange(0, 1_000_000)],
        description=_l("0 for a free course. Paid registration opens with online payments."),
    )
    capacity = IntegerField(
        _l("Seats per lesson"), default=20, validators=[DataRequired(), NumberRange(1, 1000)]
    )
    is_open = BooleanField(_l("Taking registrations"), default=True)


class LessonForm(FlaskForm):
    title = StringField(_l("Lesson title"), filters=[strip_filter], validators=[Length(max=120)])
    starts_at = DateTimeLocalField(
        _l("Starts at"), validators=[DataRequired()], format=DATETIME_FORMATS
    )
    duration_minutes = IntegerField(
        _l("Length in minutes"), default=60, validators=[DataRequired(), NumberRange(5, 600)]
    )
    place = StringField(_l("Place"), filters=[strip_filter], validators=[Length(max=200)])
    online_url = StringField(
        _l("Online lesson link"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500), URL(require_tld=True)],
    )
    replay_url = StringField(
        _l("Replay link"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500), URL(require_tld=True)],
        description=_l("Add it after the lesson; families see it on their page."),
    )


class FamilyForm(FlaskForm):
    """Who the family is: what registering and enrolling by hand both ask."""

    parent_name = StringField(
        _l("Parent's name"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocomplete": "name"},
    )
    phone = StringField(
        _l("Phone"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=32)],
        render_kw={"type": "tel", "inputmode": "tel", "autocomplete": "tel"},
    )
    email = EmailField(
        _l("E-mail (optional, for reminders)"),
        filters=[strip_filter],
        validators=[Optional(), Email(), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )
    student_name = StringField(
        _l("Child's name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    student_grade = StringField(
        _l("Child's grade"), filters=[strip_filter], validators=[Length(max=40)]
    )


class RegistrationForm(FamilyForm):
    """The public registration form; the lessons' choices are set by the view."""

    lessons = MultiCheckboxField(_l("Lessons"), coerce=int, validate_choice=False)
    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )
    website = StringField()  # honeypot


class PaidRegistrationForm(RegistrationForm, CardForm):
    """Registering for a paid course: the card fields only with the test card checkout."""


EnrolForm = FamilyForm  # staff enrolling a child by hand ask the same
