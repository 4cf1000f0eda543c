"""Form pieces shared by every domain: the base of every form (which cleans what people
type), the fields every form of a kind asks the same way (passwords, a cover picture,
local date-times, phone numbers, the test card), the honeypot every public form carries,
and small helpers."""

from __future__ import annotations

import functools
import secrets

from babel import support
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from flask_wtf.file import FileAllowed, FileField, MultipleFileField
from wtforms import (
    BooleanField,
    DateTimeLocalField,
    DecimalField,
    HiddenField,
    IntegerField,
    PasswordField,
    SelectChoice,
    SelectMultipleField,
    StringField,
    TextAreaField,
)
from wtforms.i18n import messages_path
from wtforms.meta import DefaultMeta
from wtforms.validators import DataRequired, EqualTo, Length, Optional, Regexp, ValidationError
from wtforms.widgets import CheckboxInput, HiddenInput, ListWidget

from app.phones import e164
from app.text import clean_line, clean_text

PASSWORD_MIN = 10


def strip_filter(value):
    return value.strip() if isinstance(value, str) else value


class CleanMeta(DefaultMeta):
    """Every text field cleans what it is given before anything else sees it (a name goes
    into e-mail headers, SMS, CSV files and PDFs): clean_line for one-line fields,
    clean_text for text areas. Passwords are left exactly as typed."""

    def bind_field(self, form, unbound_field, options):
        return super().bind_field(form, _cleaning(unbound_field), options)


@functools.cache
def _cleaning(unbound_field):
    """The field as declared, with its cleaner first among its filters: made once per
    declared field (a form class's fields are made once), not at every form a request
    builds."""
    field_class = unbound_field.field_class
    cleaner = None
    if issubclass(field_class, TextAreaField):
        cleaner = clean_text
    elif issubclass(field_class, StringField) and not issubclass(field_class, PasswordField):
        cleaner = clean_line
    if cleaner is None:
        return unbound_field
    kwargs = dict(unbound_field.kwargs)
    kwargs["filters"] = [cleaner, *kwargs.get("filters", ())]
    return unbound_field.field_class(*unbound_field.args, **kwargs)


@functools.cache
def _wtforms_messages(locale: str) -> support.Translations:
    """WTForms' own messages ("Not a valid choice.") in a language, read from their
    catalogue once per process; Flask-WTF would read and parse the file again for every
    request that builds a form."""
    return support.Translations.load(messages_path(), [locale], domain="wtforms")


class CohortForm(FlaskForm):
    """The base of every form of Cohort: CSRF (Flask-WTF), cleaned text (CleanMeta) and
    WTForms' messages in the visitor's language."""

    class Meta(CleanMeta):
        def get_translations(self, form):
            return _wtforms_messages(str(get_locale()))


# What a datetime-local input sends, and what people type where the browser has none.
DATETIME_FORMATS = ["%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M"]


class ConfirmForm(CohortForm):
    """A form with no fields: a button that POSTs with a CSRF token."""


class MoneyField(DecimalField):
    """An amount of money as people type it, in major units ("99.00"; app.money converts
    it). Only a finite number: Python's Decimal also reads "NaN", "sNaN", "Infinity" and
    "1e999999", and WTForms' NumberRange answers a signalling NaN with a ValueError (a
    500), so anything that is not a finite number is refused here, as a field error."""

    def __init__(self, label=None, validators=None, places=2, **kwargs):
        super().__init__(label, validators, places=places, **kwargs)

    def process_formdata(self, valuelist):
        super().process_formdata(valuelist)
        if self.data is not None and not self.data.is_finite():
            self.data = None
            raise ValueError(_l("Enter an amount, such as 99.00."))


class ShownNumber(IntegerField):
    """A number the page showed (a price, a stock), sent back in a hidden field so that
    the service can tell whether it changed since: the family pays, or staff change, what
    they saw. Anything but a whole number reads as None, which matches nothing (the page
    is out of date), rather than as an error on a field nobody sees."""

    widget = HiddenInput()

    def process_formdata(self, valuelist):
        try:
            super().process_formdata(valuelist)
        except ValueError:
            self.data = None

    def show(self, value: int) -> None:
        """Show `value` on the page drawn now, whatever the request sent."""
        self.data = value
        self.raw_data = None


def one_time_key() -> HiddenField:
    """A fresh random key in each form shown, sent back with it: the same form sent twice
    (a double click, a resend after a slow answer) carries the same key, which its
    service records under a unique constraint, so it acts once."""
    return HiddenField(
        default=lambda: secrets.token_urlsafe(16),
        validators=[DataRequired(), Regexp(r"^[A-Za-z0-9_-]{16,64}$")],
    )


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


def local_datetime_field(label, required: bool = True, **kwargs) -> DateTimeLocalField:
    """A date and time typed in the institution's time zone (app.localtime converts it)."""
    return DateTimeLocalField(
        label,
        validators=[DataRequired() if required else Optional()],
        format=DATETIME_FORMATS,
        **kwargs,
    )


def image_field(label, description, type_message) -> FileField:
    """An uploaded picture (a logo, a cover), checked again by its content in app.images."""
    return FileField(
        label,
        validators=[FileAllowed(["png", "jpg", "jpeg", "webp"], type_message)],
        description=description,
    )


def phone_field(label, required: bool = True) -> StringField:
    """A phone number as people type it (app.phones normalises it to E.164)."""
    return StringField(
        label,
        filters=[strip_filter],
        validators=[DataRequired() if required else Optional(), Length(max=32)],
        render_kw={"type": "tel", "inputmode": "tel", "autocomplete": "tel"},
    )


class CoverFields:
    """A cover picture to upload or remove."""

    cover = image_field(
        _l("Cover picture"),
        _l("PNG, JPEG or WebP, at most 1 MB. Shown on the page and in link previews."),
        _l("The image must be a PNG, JPEG or WebP file."),
    )
    remove_cover = BooleanField(_l("Remove the cover picture"))


class Honeypot:
    """A field people never see (templates/_forms.html hides it) and bots fill in. A public
    form whose honeypot is filled is answered by app.web.bot_answer: as if it had worked,
    with nothing kept."""

    website = StringField()

    def is_bot(self) -> bool:
        return bool(self.website.data)


class CardFields:
    """The test card of the test-card checkout (localstripe only: in production Stripe.js
    collects the card and these fields are dropped, see payments.checkout)."""

    card_number = StringField(
        _l("Card number"),
        filters=[lambda v: "".join((v or "").split())],
        default="4242 4242 4242 4242",
        validators=[DataRequired(), Regexp(r"^\d{16}$", message=_l("Enter the 16 digits."))],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-number"},
    )
    card_expiry = StringField(
        _l("Expiry (MM/YY)"),
        filters=[lambda v: (v or "").strip()],
        default="12/30",
        validators=[
            DataRequired(),
            Regexp(r"^(0[1-9]|1[0-2])/\d{2}$", message=_l("Write it as MM/YY.")),
        ],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-exp"},
    )
    card_cvc = StringField(
        _l("CVC"),
        filters=[lambda v: (v or "").strip()],
        default="123",
        validators=[DataRequired(), Regexp(r"^\d{3}$", message=_l("Three digits."))],
        render_kw={"inputmode": "numeric", "autocomplete": "cc-csc"},
    )
    CARD_FIELDS = ("card_number", "card_expiry", "card_cvc")

    def card(self) -> tuple[str, int, int, str] | None:
        """(number, month, year, CVC), or None when the form has no card fields."""
        if getattr(self, "card_number", None) is None:  # dropped: Stripe.js collects it
            return None
        month, year = self.card_expiry.data.split("/")
        return self.card_number.data, int(month), 2000 + int(year), self.card_cvc.data

    def drop_card_fields(self) -> None:
        for name in self.CARD_FIELDS:
            delattr(self, name)


def member_choices(memberships, blank_label) -> list[SelectChoice]:
    """An institution's members as select options, after a blank one ("nobody", "anyone")."""
    return [
        SelectChoice("", blank_label),
        *(SelectChoice(str(m.user_id), m.user.name) for m in memberships),
    ]


def to_e164(raw: str, region: str) -> str:
    """A phone number in E.164 form, or ValidationError with a readable message."""
    number = e164(raw, region)
    if number is None:
        raise ValidationError(_l("Enter a valid phone number."))
    return number


def pictures_field(most: int) -> MultipleFileField:
    """Up to `most` photos from a phone (a group post, a check-in): checked and re-encoded
    by app.images when the form is handled, shrunk in the browser first (`data-shrink`)."""
    return MultipleFileField(
        _l("Pictures (up to %(n)s)", n=most),
        validators=[
            FileAllowed(
                ["png", "jpg", "jpeg", "webp"], _l("Pictures must be PNG, JPEG or WebP files.")
            )
        ],
        render_kw={"accept": "image/png,image/jpeg,image/webp", "multiple": True},
    )


def uploaded_pictures(field: MultipleFileField) -> list[bytes]:
    """The bytes of each picture chosen in the field (none: an empty list)."""
    return [f.read() for f in field.data or () if getattr(f, "filename", None)]
