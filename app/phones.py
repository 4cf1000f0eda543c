"""Phone numbers in one form: E.164, parsed with Google's libphonenumber rules."""

from __future__ import annotations

import phonenumbers


def e164(raw: str | None, region: str) -> str | None:
    """`raw` as E.164 ("+8613800138000"), reading numbers without a country code as numbers
    of `region`; None if it is not a valid number."""
    if not raw or len(raw) > 40:
        return None
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def readable(number: str | None, region: str) -> str:
    """An E.164 number the way people write it: a number of `region` in its national form
    ("138 0013 8000"), any other in the international one ("+1 650-253-0000"). Text that
    is not a number is given back as it is."""
    if not number:
        return ""
    try:
        parsed = phonenumbers.parse(number, region)
    except phonenumbers.NumberParseException:
        return number
    if not phonenumbers.is_valid_number(parsed):
        return number
    same_region = phonenumbers.region_code_for_number(parsed) == region
    form = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if same_region
        else phonenumbers.PhoneNumberFormat.INTERNATIONAL
    )
    return phonenumbers.format_number(parsed, form)
