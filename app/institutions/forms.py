from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo, available_timezones

import phonenumbers
from babel import Locale
from babel.dates import get_timezone_location
from flask_babel import get_locale
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    EmailField,
    SelectChoice,
    SelectField,
    StringField,
    TextAreaField,
)
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from app.forms import CohortForm, image_field, password_fields, phone_field, strip_filter, to_e164
from app.institutions.models import CURRENCIES, LOCALES, slug_problem

LOCALE_NAMES = {"zh_CN": "简体中文", "en": "English"}


# The zones our institutions are most likely in, offered first (then every zone).
LIKELY_ZONES = (
    "Asia/Shanghai",
    "Asia/Hong_Kong",
    "Asia/Macau",
    "Asia/Taipei",
    "Asia/Singapore",
    "Asia/Kuala_Lumpur",
    "Asia/Tokyo",
    "Europe/London",
    "America/Los_Angeles",
    "America/New_York",
    "Australia/Sydney",
)


def _zone_label(zone: str, locale) -> str:
    """ "中国（上海）时间 · UTC+08:00", in the page's language."""
    try:
        place = get_timezone_location(zone, locale=locale)
    except LookupError:
        place = zone.replace("_", " ")
    offset = datetime.now(ZoneInfo(zone)).strftime("%z")
    return f"{place} · UTC{offset[:3]}:{offset[3:]}"


def timezone_choices() -> dict:
    """The likely zones first, then all of them (both groups named in the page's
    language), each labelled by its place and its offset today."""
    locale = get_locale() or Locale("en")
    every = sorted(
        zone
        for zone in available_timezones()
        if "/" in zone
        and zone not in LIKELY_ZONES
        and not zone.startswith(("Etc/", "SystemV/", "posix/", "right/"))
    )
    return {
        str(_l("Most used")): [SelectChoice(z, _zone_label(z, locale)) for z in LIKELY_ZONES],
        str(_l("Other time zones")): [
            SelectChoice(z, f"{z.replace('_', ' ')} · {_zone_label(z, locale)}") for z in every
        ],
    }


def currency_choices():
    locale = get_locale() or Locale("en")
    return [
        SelectChoice(code, f"{code} · {locale.currencies.get(code, code)}") for code in CURRENCIES
    ]


def country_choices():
    locale = get_locale() or Locale("en")
    names = {
        region: locale.territories.get(region, region) for region in phonenumbers.SUPPORTED_REGIONS
    }
    return [
        SelectChoice(region, name)
        for region, name in sorted(names.items(), key=lambda item: item[1])
    ]


class InstitutionFields:
    """What signup and settings share."""

    timezone = SelectField(
        _l("Time zone"),
        default="Asia/Shanghai",
        description=_l("Every time is shown in this zone."),
    )
    currency = SelectField(_l("Currency"), default="CNY")
    locale = SelectField(
        _l("Default language"),
        default="zh_CN",
        choices=[SelectChoice(code, LOCALE_NAMES[code]) for code in LOCALES],
    )

    def fill_choices(self):
        self.timezone.choices = timezone_choices()
        self.currency.choices = currency_choices()


class SignupForm(InstitutionFields, CohortForm):
    name = StringField(
        _l("Institution name"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    slug = StringField(
        _l("Web address"),
        filters=[strip_filter, lambda v: v.lower() if v else v],
        validators=[DataRequired(), Length(min=3, max=48)],
        description=_l(
            "Your pages will live at /your-address/. Lowercase letters, digits and hyphens."
        ),
    )
    owner_name = StringField(
        _l("Your name"), filters=[strip_filter], validators=[DataRequired(), Length(max=80)]
    )
    email = EmailField(
        _l("E-mail"),
        filters=[strip_filter],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )
    password, confirm = password_fields()
    accept_terms = BooleanField(
        _l("I agree to the terms of service"),
        validators=[DataRequired(_l("Please accept the terms."))],
    )

    def validate_slug(self, field):
        problem = slug_problem(field.data)
        if problem:
            raise ValidationError(problem)


class SettingsForm(InstitutionFields, CohortForm):
    name = StringField(
        _l("Institution name"), filters=[strip_filter], validators=[DataRequired(), Length(max=120)]
    )
    country = SelectField(
        _l("Country or region"),
        default="CN",
        description=_l("Phone numbers without a country code are read as numbers of this region."),
    )
    contact_email = EmailField(
        _l("Contact e-mail"),
        filters=[strip_filter],
        validators=[Optional(), Length(max=254), Email(check_deliverability=False)],
    )
    contact_phone = phone_field(_l("Contact phone"), required=False)
    address = TextAreaField(
        _l("Address"), filters=[strip_filter], validators=[Optional(), Length(max=300)]
    )
    logo = image_field(
        _l("Logo"),
        _l("PNG, JPEG or WebP, at most 1 MB."),
        _l("The logo must be a PNG, JPEG or WebP image."),
    )
    remove_logo = BooleanField(_l("Remove the current logo"))

    def fill_choices(self):
        super().fill_choices()
        self.country.choices = country_choices()

    def validate_contact_phone(self, field):
        if field.data:
            field.data = to_e164(field.data, self.country.data or "CN")
