"""CSV in and out: every staff table exports through `csv_response`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from flask import Response

from app.text import clean_line

# A cell starting with one of these is run as a formula by Excel and friends.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _safe(value) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_response(filename: str, header: list[str], rows: Iterable[Iterable]) -> Response:
    """A CSV download that opens correctly in Excel (UTF-8 with BOM), with formula-like
    cells neutralised."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    for row in rows:
        writer.writerow([_safe(value) for value in row])
    response = Response("\ufeff" + buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


def read_csv(data: bytes, max_rows: int) -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows of an uploaded CSV (UTF-8, with or without BOM, or GB18030 as Excel
    writes it on Chinese Windows). Raises ValueError with a readable reason."""
    for encoding in ("utf-8-sig", "gb18030"):
        try:
            text = data.decode(encoding)
            break
        except UnicodeDecodeError:
            continue
    else:
        raise ValueError("encoding")
    reader = csv.DictReader(io.StringIO(text))
    header = [name.strip().lower() for name in (reader.fieldnames or [])]
    reader.fieldnames = header
    rows = []
    for row in reader:
        if len(rows) >= max_rows:
            raise ValueError("too_many_rows")
        rows.append({key: clean_line(value or "").strip() for key, value in row.items() if key})
    return header, rows
