from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import db
from app.notifications.services import deliver_due


@click.command("deliver-outbox")
@with_appcontext
def deliver_outbox_command():
    """Send every outbox message that is due now, here (what the deliverer does all the
    time: python worker.py --deliver)."""
    with db.platform():
        count = deliver_due()
    click.echo(f"sent {count} message(s)")


COMMANDS = [deliver_outbox_command]
