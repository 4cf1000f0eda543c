"""Uploaded images (logos, covers, pictures in posts): checked by their content, never by
name or type."""

from __future__ import annotations

import io

import segno
from flask import current_app, request
from flask_babel import lazy_gettext as _l
from PIL import Image, ImageOps, UnidentifiedImageError

from app.db import utcnow
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


def update_picture(row, *, remove: bool, upload, picture: str = "cover") -> None:
    """Apply a form's picture field to `row` (a lead form's or a course's cover, a course's
    teacher QR code: any row with `<picture>`, `<picture>_content_type` and
    `<picture>_updated_at`): remove it, replace it with the uploaded file (checked as
    above, capped at LOGO_MAX_BYTES), or leave it as it is."""
    if remove:
        for column in (picture, f"{picture}_content_type", f"{picture}_updated_at"):
            setattr(row, column, None)
    elif upload:
        data = upload.read()
        content_type = checked_image(data, current_app.config["LOGO_MAX_BYTES"], field=picture)
        setattr(row, picture, data)
        setattr(row, f"{picture}_content_type", content_type)
        setattr(row, f"{picture}_updated_at", utcnow())


def image_response(data: bytes, content_type: str, updated_at):
    """A stored picture (logo, cover) as a cacheable response, revalidated by its time."""
    response = current_app.response_class(data, mimetype=content_type)
    response.set_etag(str(int(updated_at.timestamp())))
    response.cache_control.public = True
    response.cache_control.max_age = 3600
    return response.make_conditional(request)


def qr_response(url: str, fmt: str, filename: str):
    """`url` as a QR code to download, PNG or SVG (segno)."""
    buffer = io.BytesIO()
    segno.make(url, error="m").save(buffer, kind=fmt, scale=10 if fmt == "png" else 8, border=2)
    response = current_app.response_class(
        buffer.getvalue(), mimetype="image/svg+xml" if fmt == "svg" else "image/png"
    )
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}.{fmt}"'
    return response


PHOTO_SIDE = 2048


def reencoded_photo(data: bytes, max_bytes: int, field: str) -> tuple[bytes, str]:
    """A photo a family uploads, checked as `checked_image` does, then drawn again: turned
    upright by its EXIF orientation, at most PHOTO_SIDE pixels on a side, saved as JPEG (or
    PNG, if it has transparency) with no metadata at all, so no location or device goes
    out with it, and nothing but pixels from the file survives."""
    checked_image(data, max_bytes, field)
    with Image.open(io.BytesIO(data)) as image:
        image = ImageOps.exif_transpose(image)
        image.thumbnail((PHOTO_SIDE, PHOTO_SIDE))
        transparent = image.mode in ("RGBA", "LA") or "transparency" in image.info
        out = io.BytesIO()
        if transparent:
            image.convert("RGBA").save(out, format="PNG", optimize=True)
            return out.getvalue(), "image/png"
        image.convert("RGB").save(out, format="JPEG", quality=85, optimize=True)
        return out.getvalue(), "image/jpeg"


def qr_codes_in(data: bytes) -> list[str]:
    """The text of every QR code in a picture (zxing-cpp), an advert's usual vehicle."""
    import zxingcpp  # a compiled decoder: loaded where pictures are checked only

    with Image.open(io.BytesIO(data)) as image:
        found = zxingcpp.read_barcodes(image.convert("RGB"), formats=zxingcpp.BarcodeFormat.QRCode)
    return [code.text for code in found]
