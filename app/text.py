"""Text as people meant it: what every form field and every value taken from a request
goes through before it is stored or sent on."""

from __future__ import annotations

import re
import unicodedata

# Characters no one types on purpose and that break what text flows into: control
# characters (a line break in an e-mail header, NUL in PostgreSQL), and the invisible
# direction marks and overrides that make text read differently from what it is.
_INVISIBLE = re.compile(
    "[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069\ufeff]"
)
_LINE_BREAKS = re.compile("[\r\n\t\u2028\u2029\x85]+")


def clean_line(value):
    """One line of text as people meant it: NFC, line breaks and tabs as one space,
    control and direction-override characters removed."""
    if not isinstance(value, str):
        return value
    return _INVISIBLE.sub("", _LINE_BREAKS.sub(" ", unicodedata.normalize("NFC", value)))


def clean_text(value):
    """Several lines of text: as clean_line, but line breaks kept (as newlines)."""
    if not isinstance(value, str):
        return value
    value = unicodedata.normalize("NFC", value).replace("\r\n", "\n").replace("\r", "\n")
    return _INVISIBLE.sub("", value.replace("\u2028", "\n").replace("\u2029", "\n"))


def masked_name(name: str | None) -> str:
    """How one family's name shows to other families: its first character and a mask."""
    name = (name or "").strip()
    return (name[:1] + "**") if name else "**"
