"""Signed, expiring tokens for links sent by e-mail or SMS (itsdangerous, keyed by the
app's secret and salted by purpose, so a token for one purpose is useless for another)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer

from app.errors import ServiceError

LINK_INVALID = _l("This link is invalid or has already been used.")
LINK_EXPIRED = _l("This link has expired. Ask for a new one.")


def _serializer(purpose: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=f"cohort.{purpose}")


def sign(purpose: str, payload: dict) -> str:
    return _serializer(purpose).dumps(payload)


def load(purpose: str, token: str, max_age: timedelta) -> dict:
    """The payload of a token; ServiceError (link_expired / link_invalid) otherwise."""
    try:
        return _serializer(purpose).loads(token, max_age=int(max_age.total_seconds()))
    except SignatureExpired as exc:
        raise ServiceError(LINK_EXPIRED, code="link_expired") from exc
    except BadSignature as exc:
        raise ServiceError(LINK_INVALID, code="link_invalid") from exc
