"""Command-line tools for payments."""

from __future__ import annotations

import click
from flask.cli import with_appcontext


@click.command("reconcile-payments")
@with_appcontext
def reconcile_payments_command():
    """Read every unfinished payment back from Stripe now and apply what it says."""
    from app.db import utcnow
    from app.payments.queries import payments_to_reconcile
    from app.payments.tasks import reconcile_payment

    payments = payments_to_reconcile(utcnow(), settle_after_seconds=0)
    for payment in payments:
        reconcile_payment(payment.institution_id, payment.id)
    click.echo(f"{len(payments)} payment(s) reconciled")


COMMANDS = [reconcile_payments_command]
