from __future__ import annotations

from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileAllowed, FileField
from wtforms import (
    DateField,
    EmailField,
    HiddenField,
    IntegerField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional

from app.contacts.models import SOURCE_LABELS, FamilyDetails
from app.forms import CohortForm, phone_field, strip_filter
from app.leads.models import Stage


class ParentForm(CohortForm):
    """The parent: name, phone and an optional e-mail (a flash sale's "remind me" asks
    for no more; `FamilyForm` adds the child)."""

    parent_name = StringField(
        _l("Parent's name"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=80)],
        render_kw={"autocomplete": "name"},
    )
    phone = phone_field(_l("Phone"))
    email = EmailField(
        _l("E-mail (optional, for reminders)"),
        filters=[strip_filter],
        validators=[Optional(), Email(), Length(max=254)],
        render_kw={"autocomplete": "email"},
    )


class FamilyForm(ParentForm):
    """Who the family is, as a parent says it on a public page (registering for a course,
    joining a group buy) and as staff type it when they enrol a child by hand. The
    contacts service finds or creates the family from it (services.find_family)."""

    student_name = StringField(
        _l("Child's name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    student_grade = StringField(
        _l("Child's grade"), filters=[strip_filter], validators=[Length(max=40)]
    )

    def details(self, *, consent_text: str | None = None, locale: str | None = None):
        """What the contacts service needs to find or create the family."""
        return FamilyDetails(
            parent_name=self.parent_name.data,
            phone=self.phone.data,
            email=self.email.data or None,
            student_name=self.student_name.data,
            student_grade=self.student_grade.data or None,
            consent_text=consent_text,
            locale=locale,
        )


class ContactForm(CohortForm):
    parent_name = StringField(
        _l("Parent's name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    phone = StringField(
        _l("Phone"), filters=[strip_filter], validators=[DataRequired(), Length(max=40)]
    )
    email = EmailField(
        _l("E-mail"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=254), Email(check_deliverability=False)],
    )
    wechat_id = StringField(
        _l("WeChat ID"), filters=[strip_filter], validators=[Optional(), Length(max=64)]
    )
    owner_id = SelectField(_l("Assigned to"), validate_choice=True)
    tags = StringField(
        _l("Tags"),
        filters=[strip_filter],
        validators=[Length(max=300)],
        description=_l("Separate tags with commas."),
    )
    notes = TextAreaField(_l("Notes"), filters=[strip_filter], validators=[Length(max=4000)])


class StudentForm(CohortForm):
    name = StringField(
        _l("Child's name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    grade = StringField(_l("Grade"), filters=[strip_filter], validators=[Length(max=40)])
    birth_year = IntegerField(
        _l("Birth year"), validators=[Optional(), NumberRange(min=1990, max=2100)]
    )
    school = StringField(_l("School"), filters=[strip_filter], validators=[Length(max=120)])


class NoteForm(CohortForm):
    text = TextAreaField(
        _l("Note"), filters=[strip_filter], validators=[DataRequired(), Length(max=4000)]
    )


class MergeForm(CohortForm):
    phone = StringField(
        _l("Phone of the duplicate contact"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=40)],
    )


class ImportForm(CohortForm):
    file = FileField(
        _l("CSV file"), validators=[FileAllowed(["csv", "txt"], _l("Upload a .csv file."))]
    )
    csv_text = HiddenField()


class FilterForm(CohortForm):
    """The list's search and filters (a GET form: no CSRF)."""

    class Meta:
        csrf = False

    q = StringField(_l("Search"), filters=[strip_filter], validators=[Length(max=100)])
    owner = SelectField(_l("Assigned to"), validate_choice=False)
    stage = SelectField(
        _l("Stage"),
        validate_choice=False,
        choices=[
            SelectChoice("", _l("Any stage")),
            *(SelectChoice(stage.value, stage.label) for stage in Stage),
        ],
    )
    source = SelectField(
        _l("Source"),
        choices=[
            SelectChoice("", _l("Any source")),
            *(SelectChoice(k.value, v) for k, v in SOURCE_LABELS.items()),
        ],
    )
    tag = SelectField(_l("Tag"), validate_choice=False)
    created_from = DateField(_l("Added from"), validators=[Optional()])
    created_to = DateField(_l("Added until"), validators=[Optional()])
