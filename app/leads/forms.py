from __future__ import annotations

from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    Form,
    FormField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.fields import FieldList
from wtforms.validators import URL, DataRequired, Length, NumberRange, Optional

from app.forms import (
    CleanMeta,
    CohortForm,
    CoverFields,
    Honeypot,
    MultiCheckboxField,
    local_datetime_field,
    strip_filter,
)
from app.leads.models import ALWAYS_ON, BUILTIN_FIELDS, FIELD_KIND_LABELS, STAGE_LABELS

OPTIONAL_BUILTINS = [key for key in BUILTIN_FIELDS if key not in ALWAYS_ON]
CUSTOM_SLOTS = 3  # empty custom-question rows offered below the existing ones


class BuiltinFieldForm(Form):
    Meta = CleanMeta

    # Which built-in this row is: rows whose boxes are unticked send nothing else, so the
    # key, not the row's position, says which question a row is about.
    key = HiddenField()
    include = BooleanField(_l("Ask"))
    required = BooleanField(_l("Required"))
    caption = StringField(_l("Label"), filters=[strip_filter], validators=[Length(max=120)])


class CustomFieldForm(Form):
    Meta = CleanMeta

    key = StringField()
    kind = SelectField(
        _l("Type"), choices=[SelectChoice(k.value, v) for k, v in FIELD_KIND_LABELS.items()]
    )
    caption = StringField(_l("Question"), filters=[strip_filter], validators=[Length(max=120)])
    help = StringField(_l("Help text"), filters=[strip_filter], validators=[Length(max=200)])
    choices = TextAreaField(_l("Choices, one per line"), validators=[Length(max=2000)])
    required = BooleanField(_l("Required"))
    position = IntegerField(_l("Order"), validators=[Optional(), NumberRange(0, 99)])


class LeadFormForm(CoverFields, CohortForm):
    title = StringField(
        _l("Title"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    intro = TextAreaField(_l("Introduction"), filters=[strip_filter], validators=[Length(max=2000)])
    builtins = FieldList(
        FormField(BuiltinFieldForm),
        min_entries=len(OPTIONAL_BUILTINS),
        max_entries=len(OPTIONAL_BUILTINS),
    )
    custom = FieldList(FormField(CustomFieldForm), max_entries=30)
    consent_text = TextAreaField(
        _l("Consent text"),
        filters=[strip_filter],
        validators=[Length(max=1000)],
        description=_l("If set, parents must tick a box agreeing to it."),
    )
    thank_you_message = TextAreaField(
        _l("Thank-you message"), filters=[strip_filter], validators=[Length(max=1000)]
    )
    redirect_url = StringField(
        _l("Or send them to this page"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=500), URL(require_tld=True)],
    )
    is_open = BooleanField(_l("Taking answers"), default=True)
    closes_at = local_datetime_field(_l("Close on"), required=False)
    submission_cap = IntegerField(
        _l("At most this many submissions"), validators=[Optional(), NumberRange(1, 1_000_000)]
    )


class PublicForm(Honeypot, CohortForm):
    """The fixed part of a public lead form: CSRF, the honeypot and the consent box. The
    questions themselves come from the LeadForm and are checked by the service."""

    consent = BooleanField()
    # Where the parent came from, read on the first visit: on the POST it would be us.
    referrer = HiddenField(validators=[Length(max=500)])


def stage_choices(include_blank=False):
    choices = [SelectChoice(stage.value, label) for stage, label in STAGE_LABELS.items()]
    return [SelectChoice("", _l("Any stage")), *choices] if include_blank else choices


class StageForm(CohortForm):
    stage = SelectField(_l("Stage"), choices=stage_choices())
    lost_reason = SelectField(_l("Reason"), validate_choice=False)


class OwnerForm(CohortForm):
    owner_id = SelectField(_l("Assigned to"))


class FollowUpForm(CohortForm):
    text = TextAreaField(
        _l("Follow-up note"), filters=[strip_filter], validators=[DataRequired(), Length(max=4000)]
    )
    next_contact_at = local_datetime_field(_l("Next contact"), required=False)


class BulkAssignForm(CohortForm):
    owner_id = SelectField(_l("Assign the selected leads to"))
    lead_ids = SelectMultipleField(validate_choice=False, coerce=int)


class LeadFilterForm(CohortForm):
    class Meta:
        csrf = False

    stage = SelectField(
        _l("Stage"), choices=stage_choices(include_blank=True), validate_choice=False
    )
    owner = SelectField(_l("Assigned to"), validate_choice=False)
    form = SelectField(_l("Form"), validate_choice=False)
    source = StringField(_l("Source"), filters=[strip_filter], validators=[Length(max=100)])
    created_from = DateField(_l("Added from"), validators=[Optional()])
    created_to = DateField(_l("Added until"), validators=[Optional()])


class PipelineSettingsForm(CohortForm):
    lost_reasons = TextAreaField(
        _l("Reasons a lead is lost, one per line"), validators=[DataRequired(), Length(max=2000)]
    )
    round_robin = MultiCheckboxField(
        _l("Share new leads in turn between"), coerce=int, validate_choice=True
    )
