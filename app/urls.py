"""Absolute links for e-mails and other messages."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import current_app


def external_url(endpoint: str, **values) -> str:
    """An absolute URL on the configured PUBLIC_URL.

    Links in e-mails are never built from the request's Host header: a forged Host would
    otherwise put an attacker's domain in a password-reset e-mail. This also works inside
    jobs, where there is no request at all.
    """
    parts = urlsplit(current_app.config["PUBLIC_URL"])
    adapter = current_app.url_map.bind(
        parts.netloc, script_name=parts.path or "/", url_scheme=parts.scheme
    )
    return adapter.build(endpoint, values, force_external=True)
