from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    IntegerField,
    RadioField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import (
    URL,
    DataRequired,
    Length,
    NumberRange,
    Optional,
    ValidationError,
)

from app.contacts.forms import FamilyForm
from app.courses.models import KIND_LABELS, NEXT_STEP_LABELS, NextStep
from app.forms import (
    CardFields,
    CohortForm,
    CoverFields,
    Honeypot,
    MoneyField,
    MultiCheckboxField,
    image_field,
    local_datetime_field,
    strip_filter,
)


class CourseForm(CoverFields, CohortForm):
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
    teacher_id = SelectField(_l("Teacher"), default="")
    price = MoneyField(
        _l("Price"),
        default=0,
        validators=[NumberRange(0, 1_000_000)],
        description=_l("0 for a free course. Paid registration opens with online payments."),
    )
    capacity = IntegerField(
        _l("Seats per lesson"), default=20, validators=[DataRequired(), NumberRange(1, 1000)]
    )
    is_open = BooleanField(_l("Taking registrations"), default=True)
    next_step = RadioField(
        _l("After registering, families are asked to"),
        choices=[SelectChoice(k.value, v) for k, v in NEXT_STEP_LABELS.items()],
        default=NextStep.GROUP.value,
    )
    next_step_text = TextAreaField(
        _l("Message to families"),
        filters=[strip_filter],
        validators=[Length(max=500)],
        description=_l(
            "Shown on the confirmation page, with the lessons: what to bring, how to prepare."
        ),
    )
    teacher_qr = image_field(
        _l("Teacher's contact QR code"),
        _l("A picture of the QR code of the teacher's chat contact (PNG, JPEG or WebP, 1 MB)."),
        _l("The image must be a PNG, JPEG or WebP file."),
    )
    remove_teacher_qr = BooleanField(_l("Remove the QR code"))

    def validate_next_step_text(self, field) -> None:
        if self.next_step.data == NextStep.MESSAGE.value and not field.data:
            raise ValidationError(_l("Write the message families should read."))


class LessonForm(CohortForm):
    title = StringField(_l("Lesson title"), filters=[strip_filter], validators=[Length(max=120)])
    starts_at = local_datetime_field(_l("Starts at"))
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


class RegistrationForm(Honeypot, FamilyForm):
    """The public registration form; the lessons' choices are set by the view."""

    lessons = MultiCheckboxField(_l("Lessons"), coerce=int, validate_choice=False)
    consent = BooleanField(
        validators=[DataRequired(_l("Please agree so that we can contact you."))]
    )


class PaidRegistrationForm(CardFields, RegistrationForm):
    """Registering for a paid course: the card fields only with the test card checkout."""


EnrolForm = FamilyForm  # staff enrolling a child by hand ask the same
