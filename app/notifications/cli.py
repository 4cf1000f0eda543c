from __future__ import annotations

import click
from flask.cli import with_appcontext

from app.extensions import db
from app.notifications.tasks import sweep_outbox


@click.command("sweep-outbox")
@with_appcontext
def sweep_outbox_command():
    """Enqueue delivery of every due outbox message whose job is missing (as the scheduler
    does every SWEEP_INTERVAL_SECONDS)."""
    count = sweep_outbox()
    db.session.commit()
    click.echo(f"enqueued {count} message(s)")


COMMANDS = [sweep_outbox_command]
