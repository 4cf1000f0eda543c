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
