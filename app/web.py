"""Web plumbing shared by every page: language and time zone selection, template helpers,
security headers, the health check and the language switch."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from babel import Locale
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    has_request_context,
    jsonify,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import format_date, format_datetime, get_locale, get_timezone, gettext
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape
from sqlalchemy import text

from app.extensions import babel, db, redis_connection, talisman
from app.localtime import format_day, format_time
from app.money import format_money
from app.phones import readable
from app.tenancy import bound_institution, current_membership
from app.urls import external_url

core = Blueprint("core", __name__)


# --- language and time zone ------------------------------------------------------------------


def select_locale() -> str:
    """The visitor's choice (?lang= or the switcher), else the institution's default, else
    the browser's preference, else the configured default."""
    languages = current_app.config["LANGUAGES"]
    if not has_request_context():  # a job or a command: the default, unless force_locale
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    chosen = request.args.get("lang") or session.get("lang")
    if chosen in languages:
        return chosen
    institution = bound_institution()
    if institution is not None and institution.locale in languages:
        return institution.locale
    best = request.accept_languages.best_match(["zh-CN", "zh", "en"])
    if best in ("zh-CN", "zh"):
        return "zh_CN"
    if best == "en":
        return "en"
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def current_language() -> str:
    """The active language as one of the LANGUAGES keys ("zh_CN", "en"): what we store on
    rows and in links (Babel itself would say "zh_Hans_CN")."""
    locale = get_locale()
    for code in current_app.config["LANGUAGES"]:
        if locale is not None and Locale.parse(code).language == locale.language:
            return code
    return current_app.config["BABEL_DEFAULT_LOCALE"]


def select_timezone() -> str:
    institution = bound_institution()
    return institution.timezone if institution is not None else "UTC"


def init_i18n(app: Flask) -> None:
    babel.init_app(app, locale_selector=select_locale, timezone_selector=select_timezone)


@core.get("/lang/<code>")
def set_language(code: str):
    """Remember the visitor's language and go back where they were."""
    if code in current_app.config["LANGUAGES"]:
        session["lang"] = code
    return redirect(safe_next(request.args.get("next")) or url_for("site.index"))


def list_page() -> tuple[int, dict]:
    """The page number a list was asked for (1 if none or nonsense) and the other query
    arguments, to carry into pager and export links."""
    page = max(request.args.get("page", 1, type=int) or 1, 1)
    return page, {key: value for key, value in request.args.items() if key != "page" and value}


def bot_answer():
    """The answer to a public form whose honeypot (app.forms.Honeypot) was filled in: a
    thank-you like a real one, so the bot learns nothing, and nothing kept."""
    return render_template("public_received.html")


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


# --- templates -------------------------------------------------------------------------------


def init_templates(app: Flask) -> None:
    @app.context_processor
    def page_globals():
        if not has_request_context():  # an e-mail rendered by a job
            return {}
        return {
            "institution": bound_institution(),
            "membership": current_membership(),
            "languages": current_app.config["LANGUAGES"],
            "current_locale": current_language(),
        }

    app.jinja_env.filters["money"] = format_money
    # Links to share, on PUBLIC_URL (never the request's Host: a kept page is shown to all).
    app.jinja_env.globals["external_url"] = external_url
    # A lesson's time the way people write it in the page's language ("11月26日 周四 19:00").
    app.jinja_env.filters["lesson_time"] = lambda value: format_time(
        value, str(get_timezone()), current_language()
    )
    app.jinja_env.filters["local_datetime"] = lambda value, fmt="medium": (
        format_datetime(value, fmt) if value else ""
    )
    app.jinja_env.filters["local_date"] = lambda value, fmt="medium": (
        format_date(value, fmt) if value else ""
    )
    app.jinja_env.filters["day_heading"] = lambda value: format_day(value, current_language())
    # A stored E.164 number as people write it ("138 0013 8000"), in links' text only.
    app.jinja_env.filters["phone"] = lambda value: readable(
        value, (bound_institution().country if bound_institution() else "CN")
    )
    app.jinja_env.filters["with_links"] = with_links


_URL = re.compile(r"https?://[^\s<>\"']+")


def with_links(text: str | None) -> Markup:
    """A message's text, escaped, with each address in it a short link ("Open the link")
    rather than a long line of signed token (they are the family's own links)."""
    escaped = str(escape(text or ""))
    label = escape(gettext("Open the link"))
    return Markup(  # noqa: S704 - the text is escaped above; the address is from it
        _URL.sub(lambda m: f'<a href="{m.group(0)}" rel="noopener">{label}</a>', escaped)
    )


# --- security --------------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = {
    "default-src": "'self'",
    "img-src": ["'self'", "data:"],
    "style-src": "'self'",
    "script-src": "'self'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
    "base-uri": "'self'",
    "object-src": "'none'",
}


def refuse_nul() -> None:
    """No request may carry a NUL character (in its path, query or form): no one types
    one, PostgreSQL refuses it in text, and letting it through would end in a 500. Other
    control characters are cleaned by the forms (app.forms.CleanMeta)."""
    values = [request.path, *request.args.keys(), *request.args.values()]
    if request.method != "GET" and request.mimetype in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        values += [*request.form.keys(), *request.form.values()]
    if any("\x00" in value for value in values):
        abort(400)


def init_security(app: Flask) -> None:
    """Security headers (Flask-Talisman), the NUL guard and, behind a proxy, the real
    client address."""
    app.before_request(refuse_nul)
    talisman.init_app(
        app,
        force_https=app.config["FORCE_HTTPS"],
        strict_transport_security=app.config["FORCE_HTTPS"],
        session_cookie_secure=app.config["SESSION_COOKIE_SECURE"],
        content_security_policy=CONTENT_SECURITY_POLICY,
        frame_options="DENY",
        referrer_policy="strict-origin-when-cross-origin",
    )
    app.wsgi_app = AnswerLiveness(app.wsgi_app)
    if app.config["TRUSTED_PROXIES"]:
        from werkzeug.middleware.proxy_fix import ProxyFix

        count = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


@core.get("/csrf")
def csrf_token():
    """A CSRF token for a public form whose page came from the cache (app.pagecache):
    static/js/forms.js asks for it when the parent starts filling the form in."""
    response = jsonify(token=generate_csrf())
    response.headers["Cache-Control"] = "no-store"
    return response


# --- health ----------------------------------------------------------------------------------


class AnswerLiveness:
    """`GET /healthz`: 200 while this process serves requests, what a load balancer asks
    every few seconds. It touches neither the database nor Redis (a blip of either must not
    take every instance out of rotation at once; /healthz/deep checks them), and it is
    answered here, in front of the Flask app, because a liveness probe asks whether the
    process's request threads answer, not whether a session, a CSRF check and a rate limit
    can be worked out for it: it costs no more than a hello-world page."""

    BODY = b'{"status":"ok"}\n'
    HEADERS = [
        ("Content-Type", "application/json"),
        ("Content-Length", str(len(BODY))),
        ("Cache-Control", "no-store"),
        ("X-Content-Type-Options", "nosniff"),
    ]

    def __init__(self, wsgi_app):
        self.wsgi_app = wsgi_app

    def __call__(self, environ, start_response):
        if environ.get("PATH_INFO") == "/healthz" and environ["REQUEST_METHOD"] in ("GET", "HEAD"):
            start_response("200 OK", self.HEADERS)
            return [self.BODY] if environ["REQUEST_METHOD"] == "GET" else []
        return self.wsgi_app(environ, start_response)


@core.get("/healthz/deep")
def healthz_deep():
    """200 when the database and Redis answer, 503 naming what failed."""
    checks = {}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means "not healthy"; say which
        checks["database"] = f"error: {type(exc).__name__}"
    try:
        redis_connection.client.ping()
        checks["redis"] = "ok"
    except Exception as exc:
        checks["redis"] = f"error: {type(exc).__name__}"
    healthy = all(value == "ok" for value in checks.values())
    return jsonify(status="ok" if healthy else "unavailable", checks=checks), (
        200 if healthy else 503
    )
