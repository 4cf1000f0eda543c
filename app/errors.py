"""Domain errors and the HTTP error pages.

Services raise `ServiceError` (or a subclass) for anything a user can fix; views turn it into
a field error or a flashed message. Nothing a user can send reaches the 500 handler.
"""

from __future__ import annotations

import logging
from contextlib import suppress
from urllib.parse import urlsplit, urlunsplit

from flask import Flask, flash, jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from sqlalchemy.exc import DBAPIError, OperationalError, SQLAlchemyError

from app.extensions import db
from app.web import safe_next

log = logging.getLogger(__name__)


class ServiceError(Exception):
    """A refusal a user can understand: `message` is translatable, `field` names the form
    field it belongs to (or None for the whole form), `code` is machine-readable."""

    code = "invalid"

    def __init__(self, message, field: str | None = None, code: str | None = None):
        super().__init__(str(message))
        self.message = message
        self.field = field
        if code:
            self.code = code


def report(error: ServiceError, form=None) -> None:
    """Undo the refused unit of work, then show the refusal: on its form field if the form
    has one, else as a flashed message."""
    db.session.rollback()
    field = getattr(form, error.field, None) if form is not None and error.field else None
    if field is not None:
        field.errors = [*field.errors, error.message]
        return
    flash(error.message, "error")
    if form is not None:  # so that form_status() answers 422 for it too
        form.form_errors.append(error.message)


def form_status(form) -> int:
    """422 for a form that is re-rendered with errors, 200 otherwise."""
    return 422 if form.errors else 200


ERROR_TEXT = {
    400: (_l("Bad request"), _l("We could not understand that request.")),
    403: (_l("Not allowed"), _l("Your role does not allow this action.")),
    404: (_l("Not found"), _l("This page does not exist, or you do not have access to it.")),
    405: (_l("Not allowed"), _l("That action is not available here.")),
    413: (_l("File too large"), _l("The file you sent is larger than we accept.")),
    429: (_l("Too many attempts"), _l("Please wait a moment before trying again.")),
    500: (_l("Something went wrong"), _l("We have been told and are looking into it.")),
    503: (_l("Please try again in a moment"), _l("This is unavailable for a moment.")),
}


def wants_json() -> bool:
    """The request asks for JSON (a script's fetch), not a page."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return request.is_json or best == "application/json"


def render_error(
    status: int,
    detail=None,
    retry_url: str | None = None,
    code: str | None = None,
    back_url: str | None = None,
):
    """The error page (or JSON) for `status`; `retry_url`, a path of this site to try
    again from (a 503 offers it); `back_url`, the page of this site the request came
    from."""
    title, text = ERROR_TEXT.get(status, ERROR_TEXT[500])
    if wants_json():
        return jsonify(
            error=code or _CODES.get(status, "error"), message=str(detail or text)
        ), status
    try:
        return render_template(
            "errors/error.html",
            title=title,
            text=detail or text,
            retry_url=retry_url,
            back_url=back_url,
        ), status
    except SQLAlchemyError:  # the layout needed the database, which is what failed
        return _bare_page(title, detail or text), status


def _bare_page(title, text) -> str:
    """An error page drawn without the layout (no institution, no user, no database)."""
    try:
        title, text = str(title), str(text)
    except Exception:  # even the language could not be chosen
        title, text = "Please try again in a moment", "This is unavailable for a moment."
    return (
        '<!doctype html><html><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title></head>"
        f"<body><h1>{escape(title)}</h1><p>{escape(text)}</p></body></html>"
    )


_CODES = {
    400: "bad_request",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    429: "rate_limited",
    500: "server_error",
    503: "unavailable",
}


def same_site_referrer() -> str | None:
    """The page of this site the request came from (its path and query), or None: none
    given, or another site's."""
    if not request.referrer:
        return None
    parts = urlsplit(request.referrer)
    if parts.scheme not in ("http", "https") or parts.netloc != request.host:
        return None
    return safe_next(urlunsplit(("", "", parts.path, parts.query, "")))


TOO_LARGE = _l("The pictures are too large together: send fewer at a time.")


def register_error_handlers(app: Flask) -> None:
    for status in (400, 403, 404, 405, 429, 500):
        app.register_error_handler(status, lambda exc, status=status: render_error(status))

    @app.errorhandler(413)
    def too_large(exc):
        """More than MAX_CONTENT_LENGTH in one request: in practice several phone photos
        in one post or check-in (static/js/shrink_pictures.js makes them smaller first,
        where the browser runs it). Nothing was read or kept: say why, and lead back to
        the page it came from. (Staff pages send one file at a time: a logo, a cover.)"""
        detail = None if request.path.startswith("/staff/") else TOO_LARGE
        return render_error(413, detail, back_url=same_site_referrer())

    @app.errorhandler(DBAPIError)
    def database_unavailable(error: DBAPIError):
        """The database went away (a restart, a fail-over): nothing of the request was
        committed, so say so and let the visitor try again, rather than a 500."""
        if not (error.connection_invalidated or isinstance(error, OperationalError)):
            raise error
        log.warning("database unavailable: %s", error.orig)
        # What the page shows (the institution's name and language, the signed-in user) was
        # loaded before the failure: keep it as loaded, out of a session whose rollback
        # would expire it and read it back from the database that just went away.
        with suppress(Exception):
            db.session.expunge_all()
        with suppress(Exception):
            db.session.rollback()
        return render_error(
            503,
            _l("We could not save this just now; nothing was changed. Please try again."),
            retry_url=request.full_path if request.method == "GET" else request.path,
        )

    @app.errorhandler(CSRFError)
    def csrf_error(exc: CSRFError):
        return render_error(
            400,
            _l(
                "This form has expired or was sent from elsewhere. Go back, reload the page "
                "and send it again; nothing was changed."
            ),
        )
