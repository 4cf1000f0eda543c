"""Cohort: growth and community operations for training institutions."""

from __future__ import annotations

import gc
import importlib
import logging

from flask import Flask

from app.config import PROJECT_ROOT, load_config

DOMAINS = (
    "institutions",
    "accounts",
    "notifications",
    "contacts",
    "leads",
    "courses",
    "payments",
    "campaigns",
    "portal",
    "groups",
    "loyalty",
    "memberships",
    "camps",
    "dashboard",
)


def create_app(config: dict | None = None) -> Flask:
    """Build the application: config, extensions, blueprints, jobs, CLI, error pages."""
    app = Flask(
        __name__,
        template_folder=str(PROJECT_ROOT / "templates"),
        static_folder=str(PROJECT_ROOT / "static"),
        instance_path=str(PROJECT_ROOT / "instance"),
    )
    app.config.from_mapping(load_config(config))
    configure_logging(app)
    init_extensions(app)
    register_blueprints(app)
    register_tasks()
    register_cli(app)
    register_error_handlers(app)
    if not app.testing:
        keep_out_of_the_collectors_way()
    return app


def keep_out_of_the_collectors_way() -> None:
    """Move what starting the app made (modules, the models' metadata, the catalogues:
    most of a process's objects, and they live as long as it does) out of the cyclic
    garbage collector's generations (gc.freeze), so that a full collection walks only what
    requests made since. A full collection stops every thread of the process while it
    walks: one walked everything in 428 ms, in the middle of a flash sale's start
    (bench/flash_sale.py), and the crowd's taps waited behind it."""
    gc.collect()
    gc.freeze()


def configure_logging(app: Flask) -> None:
    if not app.debug and not app.testing:
        logging.basicConfig(
            level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
        )


def init_extensions(app: Flask) -> None:
    from app import pagecache, tenancy
    from app.accounts.queries import membership_of, user_by_auth_token
    from app.extensions import csrf, db, limiter, login_manager, redis_connection
    from app.web import init_i18n, init_security, init_templates

    db.init_app(app)
    tenancy.init_app(app)
    pagecache.init_app(app)
    tenancy.set_membership_loader(membership_of)
    redis_connection.init_app(app)  # before the limiter: it may start the embedded Redis
    url = app.config["REDIS_URL"]
    app.config.setdefault(
        "RATELIMIT_STORAGE_URI",
        "redis+unix://" + url.removeprefix("unix://") if url.startswith("unix://") else url,
    )
    limiter.init_app(app)
    csrf.init_app(app)
    init_i18n(app)
    init_security(app)
    init_templates(app)

    login_manager.init_app(app)
    login_manager.login_view = "accounts.login"
    login_manager.session_protection = "basic"
    login_manager.user_loader(tenancy.user_loader(user_by_auth_token))
    from flask_babel import lazy_gettext as _l

    login_manager.login_message = _l("Please sign in to see this page.")
    login_manager.login_message_category = "info"


def register_blueprints(app: Flask) -> None:
    from app.web import core

    app.register_blueprint(core)
    for domain in DOMAINS:
        views = importlib.import_module(f"app.{domain}.views")
        for blueprint in views.BLUEPRINTS:
            app.register_blueprint(blueprint)
    # The staff home (`institutions.home`, /staff/<slug>/) is the dashboard's page: the
    # address stays the institution's, and no domain has to import the dashboard.
    from app.dashboard.views import home

    app.view_functions["institutions.home"] = home


def register_tasks() -> None:
    """Import every domain's tasks (and the core's counters) so that their jobs and
    periodic jobs are registered."""
    importlib.import_module("app.counters")
    for domain in DOMAINS:
        importlib.import_module(f"app.{domain}.tasks")


def register_cli(app: Flask) -> None:
    for domain in DOMAINS:
        cli = importlib.import_module(f"app.{domain}.cli")
        for command in getattr(cli, "COMMANDS", ()):
            app.cli.add_command(command)


def register_error_handlers(app: Flask) -> None:
    from app.errors import register_error_handlers as register

    register(app)
