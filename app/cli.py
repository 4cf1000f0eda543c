"""The `cohort` command: Flask's CLI plus the commands that run Cohort.

cohort dev            everything on embedded defaults, with demo data (development)
cohort seed-demo      the demo institution and owner
cohort db-upgrade     apply migrations to DATABASE_URL
cohort sweep-outbox   ... and every domain's own commands (cohort --help)
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup, with_appcontext
from werkzeug.serving import run_simple

from app import create_app, migrate
from app.config import PROJECT_ROOT

cli = FlaskGroup(create_app=lambda: create_app(), help=__doc__)


@cli.command("db-upgrade")
@with_appcontext
def db_upgrade():
    """Apply every migration to DATABASE_URL (alembic upgrade head)."""
    migrate.upgrade(current_app.config["DATABASE_URL"])


@cli.command("db-grant")
@click.argument("roles", nargs=-1, required=True)
@with_appcontext
def db_grant(roles: tuple[str, ...]):
    """Grant the application's and the platform's database roles (created by your
    administrator) the use of every table, now and after later migrations."""
    migrate.grant(current_app.config["DATABASE_URL"], *roles)
    click.echo(f"granted to {', '.join(roles)}")


@cli.command("seed-demo")
@with_appcontext
def seed_demo():
    """Create the demo institution and its owner (if missing) and print the login."""
    from app import demo

    result = demo.seed()
    click.echo(
        f"demo institution /{result.slug}/ "
        f"({'created' if result.created else 'already there'}); "
        f"owner login {result.email} / {result.password}"
    )


@cli.command("dev")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=5000, show_default=True, type=int)
@with_appcontext
def dev(host: str, port: int):
    """Run Cohort for development: migrations, demo data, web server, worker, scheduler and a
    local mailbox, on SQLite and an embedded Redis unless DATABASE_URL / REDIS_URL say
    otherwise. Ctrl-C stops everything."""
    from app import demo
    from app.devtools.mailsink import MailSink
    from app.devtools.smssink import SmsSink

    app = current_app._get_current_object()
    config = app.config
    if _port_open(host, port):
        raise click.ClickException(
            f"{host}:{port} is already in use (another Cohort?). Stop it, or pass --port."
        )
    mail_dir = Path(app.instance_path) / "mail"
    mail_dir.mkdir(parents=True, exist_ok=True)

    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-connection chatter
    sink = None
    if config["SMTP_HOST"] in ("127.0.0.1", "localhost") and not _port_open(
        config["SMTP_HOST"], config["SMTP_PORT"]
    ):
        sink = MailSink(
            config["SMTP_HOST"], config["SMTP_PORT"], on_message=lambda m: _show_mail(m, mail_dir)
        ).start()

    sms_sink = None
    if not config["SMS_GATEWAY_URL"]:
        sms_sink = SmsSink("127.0.0.1", 0, on_message=_show_sms).start()
        config["SMS_GATEWAY_URL"] = sms_sink.url

    stripe = None
    if not config["STRIPE_API_BASE"] and not config["STRIPE_SECRET_KEY"]:
        from app.devtools.localstripe import LocalStripe

        # Its store is kept in instance/, so a restarted `cohort dev` finds the payments the
        # database points at.
        stripe = LocalStripe("127.0.0.1", 0, Path(app.instance_path) / "localstripe.pickle")
        stripe.start()
        config["STRIPE_API_BASE"] = stripe.url
        config["STRIPE_SECRET_KEY"] = "sk_test_cohort_dev"  # noqa: S105 - localstripe only
        config["STRIPE_PUBLISHABLE_KEY"] = "pk_test_cohort_dev"

    migrate.upgrade(config["DATABASE_URL"])
    seeded = demo.seed()
    if stripe:
        stripe.register_webhook(
            seeded.slug,
            f"http://{host}:{port}/stripe/webhook/{seeded.slug}",
            demo.DEMO_WEBHOOK_SECRET,
        )

    child_env = {
        **os.environ,
        "DATABASE_URL": config["DATABASE_URL"],
        "REDIS_URL": config["REDIS_URL"],
        "SMTP_HOST": config["SMTP_HOST"],
        "SMTP_PORT": str(config["SMTP_PORT"]),
        "PUBLIC_URL": f"http://{host}:{port}",
        "SMS_GATEWAY_URL": config["SMS_GATEWAY_URL"],
        "STRIPE_API_BASE": config["STRIPE_API_BASE"],
        "STRIPE_SECRET_KEY": config["STRIPE_SECRET_KEY"],
        "STRIPE_PUBLISHABLE_KEY": config["STRIPE_PUBLISHABLE_KEY"],
    }
    worker_py = str(PROJECT_ROOT / "worker.py")
    children = [
        subprocess.Popen([sys.executable, worker_py], env=child_env),  # noqa: S603
        subprocess.Popen([sys.executable, worker_py, "--scheduler"], env=child_env),  # noqa: S603
        subprocess.Popen([sys.executable, worker_py, "--deliver"], env=child_env),  # noqa: S603
    ]
    signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops the children too, like Ctrl-C

    base = f"http://{host}:{port}"
    click.secho("\nCohort is running", fg="green", bold=True)
    click.echo(f"  staff sign-in   {base}/login   ({seeded.email} / {seeded.password})")
    click.echo(f"  demo staff home {base}/staff/{seeded.slug}/")
    if seeded.form_code:
        click.echo(f"  demo lead form  {base}/{seeded.slug}/f/{seeded.form_code}?utm_source=demo")
    if seeded.course_code:
        click.echo(f"  trial course    {base}/{seeded.slug}/c/{seeded.course_code}")
    if seeded.paid_course_code:
        click.echo(f"  paid course     {base}/{seeded.slug}/c/{seeded.paid_course_code}")
    if seeded.group_buy_code:
        click.echo(f"  group buy       {base}/{seeded.slug}/gb/{seeded.group_buy_code}")
    if seeded.group_invite_code:
        click.echo(f"  group invite    {base}/{seeded.slug}/j/{seeded.group_invite_code}")
    if seeded.flash_sale_code:
        click.echo(f"  flash sale      {base}/{seeded.slug}/fs/{seeded.flash_sale_code}")
    click.echo(f"  parent's page   {base}/{seeded.slug}/me")
    click.echo(f"  sign up         {base}/signup")
    click.echo(f"  health          {base}/healthz/deep")
    click.echo(f"  e-mails         printed here and kept in {mail_dir}")
    if sms_sink:
        click.echo(f"  text messages   printed here (local gateway {sms_sink.url})")
    if stripe:
        click.echo(f"  payments        localstripe at {stripe.url} (test card 4242 4242 4242 4242)")
    click.echo(f"  database        {config['DATABASE_URL']}")
    click.echo(f"  redis           {config['REDIS_URL']}")
    click.echo("  Ctrl-C stops the web server, the worker, the deliverer and the scheduler.\n")
    app.config["PUBLIC_URL"] = base
    try:
        # Not app.run(): Flask ignores it inside its own CLI.
        run_simple(host, port, app, threaded=True, use_reloader=False)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(children)
        if sink:
            sink.stop()
        if sms_sink:
            sms_sink.stop()
        if stripe:
            stripe.stop()
        click.echo("Cohort stopped.")


def _show_sms(payload: dict) -> None:
    click.secho(f"\n--- text message to {payload.get('to')} ---", fg="cyan")
    click.echo(payload.get("text", ""))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _port_open(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _show_mail(message, mail_dir: Path) -> None:
    from app.devtools.mailsink import body_text

    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = mail_dir / f"{stamp}-{abs(hash(message['Message-ID'])) % 10**6:06d}.eml"
    path.write_bytes(bytes(message))
    click.secho(f"\n--- e-mail to {message['To']}: {message['Subject']}", fg="cyan")
    click.echo(body_text(message))
    click.secho(f"--- saved as {path}\n", fg="cyan")


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # RQ: finish the current job, then exit
    deadline = time.monotonic() + 15
    for child in children:
        try:
            child.wait(timeout=max(deadline - time.monotonic(), 0.1))
        except subprocess.TimeoutExpired:
            child.kill()
