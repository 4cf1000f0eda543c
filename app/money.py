"""Money is an integer of minor units plus an ISO currency; people type and read major
units. The number of decimals is the currency's own (Babel's CLDR data)."""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal

from babel.numbers import format_currency, get_currency_precision
from flask_babel import get_locale


def to_minor(amount: Decimal, currency: str) -> int:
    precision = get_currency_precision(currency)
    return int((amount * 10**precision).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def to_major(amount: int, currency: str) -> Decimal:
    return Decimal(amount) / 10 ** get_currency_precision(currency)


def format_money(amount: int, currency: str) -> str:
    """ "¥99.00" / "HK$99.00", in the page's language."""
    return format_currency(to_major(amount, currency), currency, locale=str(get_locale() or "en"))
