"""What the public pages share: links carrying a family's referral code (`?ref=`) and the
share poster of a page (app.posters draws it; this module gives it its sharer, its link
and its place in the cache).

A page's poster is `<the page's path>/poster.png?ref=<code>`, so any share link can find
its poster. The QR code carries the `ref` it was asked with when it is well formed (a
family's code, or a staff member's `staff-<id>` on a lead form), and the sharer's masked
name shows only when the code is a family's of this institution: a code made up, or of
another institution, draws a poster without a sharer, never an error.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from contextlib import suppress
from dataclasses import replace
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis
from flask import current_app, request
from flask_babel import gettext as _

from app import posters
from app.extensions import redis_connection
from app.text import masked_name

REF = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
POSTER_KEPT_SECONDS = 600


def clean_ref(ref: str | None) -> str | None:
    """`ref` if it is a well-formed referral code, else None."""
    return ref if ref and REF.match(ref) else None


def with_ref(url: str, ref: str | None) -> str:
    """`url` carrying the referral code `ref` (replacing one it had), if well formed."""
    ref = clean_ref(ref)
    if ref is None:
        return url
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "ref"] + [("ref", ref)]
    return urlunsplit(parts._replace(query=urlencode(query)))


def poster_response(
    institution,
    *,
    link: str,
    family_by_ref: Callable[[int, str], object | None],
    title: str,
    cover_of: object | None = None,
    **words,
):
    """The share poster of a page whose link is `link`, for the sharer the request's
    `ref` names (`family_by_ref(institution id, code)` finds the family, or None).
    `cover_of` is the object whose cover picture it shows, if it has one (`has_cover`,
    `cover_updated_at`; its `cover` is loaded only when the poster is drawn); `words` are
    the `posters.Poster` fields the page chose (price, badge, ...). `?download=1` answers
    it as a file to save."""
    ref = clean_ref(request.args.get("ref"))
    family = family_by_ref(institution.id, ref) if ref else None
    sharer = None
    if family is not None:
        sharer = _("%(name)s invites you", name=masked_name(family.parent_name))
    has_cover = cover_of is not None and cover_of.has_cover
    cover_version = cover_of.cover_updated_at if has_cover else ""
    logo_version = institution.logo_updated_at if institution.has_logo else None
    poster = posters.Poster(
        title=title,
        url=with_ref(link, ref),
        institution=institution.name,
        scan_hint=_("Long-press the picture to scan the QR code"),
        sharer=sharer,
        pictures_version=f"{cover_version}|{logo_version or ''}",
        **words,
    )
    return _png_response(poster, lambda: _with_pictures(poster, institution, cover_of, has_cover))


def _with_pictures(poster, institution, cover_of, has_cover):
    if has_cover:
        picture = cover_of.cover
        if picture:
            return replace(poster, cover=picture)
    return replace(poster, logo=institution.logo if institution.has_logo else None)


def _png_response(poster, with_pictures: Callable[[], posters.Poster]):
    """Drawn once per thing it shows (`Poster.cache_key`: words, numbers, link, pictures'
    versions) and kept in Redis a while, so a crowd tapping "save poster" on one page costs
    one drawing; without Redis it is drawn each time."""
    key = poster.cache_key()
    try:
        data = redis_connection.client.get(f"poster:{key}")
    except redis.RedisError:
        data = None
    if data is None:
        data = posters.render(with_pictures())
        with suppress(redis.RedisError):
            redis_connection.client.set(f"poster:{key}", data, ex=POSTER_KEPT_SECONDS)
    response = current_app.response_class(data, mimetype="image/png")
    disposition = "attachment" if request.args.get("download") else "inline"
    response.headers["Content-Disposition"] = f'{disposition}; filename="poster.png"'
    response.set_etag(key)
    # Its numbers (seats left) change: a phone keeps it a minute, a shared cache not at all.
    response.cache_control.private = True
    response.cache_control.max_age = 60
    return response.make_conditional(request)
