"""Uploaded images (logos, covers): checked by their content, never by name or type."""

from __future__ import annotations

import io

from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError

from app.errors import ServiceError

FORMATS = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
MAX_SIDE = 4096


def checked_image(data: bytes, max_bytes: int, field: str) -> str:
    """The content type of `data` if it is a PNG, JPEG or WebP image of sane size; a
    ServiceError on `field` otherwise. SVG is refused: it can carry scripts."""
    if len(data) > max_bytes:
        raise ServiceError(
            _l("The image must be at most %(size)s KB.", size=max_bytes // 1024),
            field=field,
            code="too_large",
        )
    try:
        with Image.open(io.BytesIO(data)) as image:
            image_format = image.format
            width, height = image.size
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ServiceError(
            _l("The image must be a PNG, JPEG or WebP file."), field=field, code="bad_type"
        ) from exc
    if image_format not in FORMATS:
        raise ServiceError(
            _l("The image must be a PNG, JPEG or WebP file."), field=field, code="bad_type"
        )
    if width > MAX_SIDE or height > MAX_SIDE:
        raise ServiceError(
            _l("The image must be at most %(n)s pixels wide and high.", n=MAX_SIDE),
            field=field,
            code="too_large",
        )
    return FORMATS[image_format]
