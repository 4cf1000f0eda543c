"""Faults under load: Redis and PostgreSQL restarted while parents keep sending a form.

Starts Cohort as production runs it (app/devtools/stack.py: its own database with the
application's role held to row-level security, its own redis-server, gunicorn 2 x 4, a
worker and the scheduler), has --clients parents send the demo lead form without pause,
then restarts Redis (down for --redis-down seconds) and the machine's PostgreSQL cluster,
and prints per fault: requests answered 5xx, requests that failed but whose submission was
committed (must be 0), seconds until requests succeed again, seconds until every message
is delivered; and duplicates (submissions or e-mails twice: must be 0).

    python bench/faults.py --clients 20 --redis-down 5
    python bench/faults.py --skip-postgres      # leave the machine's PostgreSQL alone

It restarts the PostgreSQL cluster of this machine (pg_ctlcluster), so every other user
of it sees the restart too: run it by hand, never in CI.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import text  # noqa: E402

from app.devtools.localstripe import LocalStripe  # noqa: E402
from app.devtools.mailsink import MailSink  # noqa: E402
from app.devtools.stack import Stack, Visitor  # noqa: E402


def restart_postgresql() -> None:
    version = os.listdir("/etc/postgresql")[0]
    subprocess.run(  # noqa: S603
        ["pg_ctlcluster", "--skip-systemctl-redirect", version, "main", "restart"],  # noqa: S607
        check=True,
    )


class Load:
    """--clients parents sending the form, each request recorded (when, status, phone)."""

    def __init__(self, stack: Stack, path: str, clients: int):
        self.stack, self.path, self.clients = stack, path, clients
        self.records: list[tuple[float, int, str]] = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._parent, args=(n,)) for n in range(clients)]

    def _parent(self, n: int) -> None:
        attempt = 0
        while not self.stop.is_set():
            phone = f"136{n:02d}{attempt:06d}"
            fields = {"parent_name": f"P{n}", "phone": phone, "subject": "数学", "consent": "y"}
            try:
                status = Visitor(self.stack.base).send(self.path, fields, timeout=30)[0]
            except OSError:
                status = 0  # no answer at all (refused, reset)
            self.records.append((time.monotonic(), status, "+86" + phone))
            attempt += 1

    def __enter__(self) -> Load:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=60)


def first_success_after(records, moment: float) -> float | None:
    times = sorted(at for at, status, _ in records if at >= moment and status == 302)
    return times[0] - moment if times else None


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--admin", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--redis-down", type=float, default=5.0)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    stripe = LocalStripe().start()
    mail = MailSink("127.0.0.1", 0).start()
    # Every parent comes from one address to one form: no rate limit may answer for a fault.
    limits = "100000 per minute"
    env = {
        "SWEEP_INTERVAL_SECONDS": "2",
        "FORM_LIMIT_PER_IP": limits,
        "FORM_LIMIT_PER_FORM": limits,
    }
    with (
        tempfile.TemporaryDirectory() as workdir,
        Stack(
            args.admin, stripe_url=stripe.url, smtp_port=mail.port, workdir=Path(workdir), env=env
        ) as stack,
    ):
        stack.cohort("seed-demo")
        stack.start_web()
        stack.start_worker()
        stack.start_deliverer()
        stack.start_scheduler()
        with stack.engine().connect() as connection:
            path = "/sunrise/f/" + connection.scalar(text("SELECT code FROM lead_forms"))
        faults: dict[str, tuple[float, float]] = {}
        with Load(stack, path, args.clients) as load:
            time.sleep(3)
            began = time.monotonic()
            stack.stop_redis()
            time.sleep(args.redis_down)
            stack.start_redis()
            faults["redis"] = (began, time.monotonic())
            time.sleep(5)
            if not args.skip_postgres:
                began = time.monotonic()
                restart_postgresql()
                back = time.monotonic()
                faults["postgresql"] = (began, back)
                while first_success_after(load.records, back) is None:
                    if time.monotonic() - back > 60:
                        break
                    time.sleep(0.5)
                time.sleep(5)
        engine = stack.engine()

        def count(sql: str) -> int:
            with engine.connect() as connection:
                return connection.scalar(text(sql))

        committed = {
            row[0] for row in engine.connect().execute(text("SELECT phone FROM form_submissions"))
        }
        drained = time.monotonic()
        new_leads = "SELECT count(*) FROM outbox_messages WHERE template = 'new_lead'"
        expected = count(new_leads)
        while (
            count(new_leads + " AND status = 'sent'") < expected
            and time.monotonic() - drained < 120
        ):
            time.sleep(0.5)
        drained = time.monotonic() - drained
        mails = [m for m in mail.messages if m["To"] == "owner@sunrise.example"]
        new_lead_mails = len(mails) - 1  # the welcome e-mail
        duplicates = count("SELECT count(*) - count(DISTINCT phone) FROM form_submissions") + max(
            new_lead_mails - expected, 0
        )

        records = load.records
        statuses = dict(sorted(Counter(status for _at, status, _phone in records).items()))
        print(
            f"load            {args.clients} parents, {len(records)} form posts in all {statuses}"
        )
        for name, (began, ended) in faults.items():
            during = [r for r in records if began - 1 <= r[0] <= ended + 5]
            errors = [r for r in during if r[1] >= 500 or r[1] == 0]
            errored_committed = [r for r in errors if r[2] in committed]
            recovered = first_success_after(records, ended)
            print(
                f"{name:<15} down {ended - began:.1f} s: {len(during)} posts around it, "
                f"{sum(1 for r in errors if r[1] >= 500)} answered 5xx "
                f"{dict(Counter(r[1] for r in errors if r[1] >= 500))}, "
                f"{sum(1 for r in errors if r[1] == 0)} unanswered, "
                f"{len(errored_committed)} committed but errored; "
                f"requests succeed {recovered:.1f} s after it is back"
                if recovered is not None
                else f"{name}: no success after it came back"
            )
        print(
            f"messages        {expected} new-lead e-mails, all delivered {drained:.1f} s after "
            f"the load stopped; {new_lead_mails} received"
        )
        print(f"duplicates      {duplicates} (submissions or e-mails twice)")
        raised = Counter(
            line.strip()
            for line in stack.log("web").splitlines()
            if re.match(r"^[\w.]+(Error|Exception|Shutdown)\b", line.strip())
        )
        for line, times in raised.most_common(5):
            print(f"web raised      {times} x {line[:150]}")
        print(
            f"alive           worker {stack.alive('worker')}, deliverer "
            f"{stack.alive('deliverer')}, scheduler {stack.alive('scheduler')}"
        )
    mail.stop()
    stripe.stop()


if __name__ == "__main__":
    main()
