"""A reminder wave: how fast the outbox's deliverers send e-mail to a local SMTP server and
text messages to a local SMS gateway, and whether every message goes exactly once.

Queues --messages lesson reminders, all due now (bench/data.py's families as recipients),
starts --deliverers processes (`python worker.py --deliver`), and times them until the
outbox is empty; once for e-mail (to app/devtools/mailsink.py, an aiosmtpd server) and
once for SMS (to app/devtools/smssink.py, an HTTP server), each in this process. With
--kill, one deliverer is SIGKILLed halfway through and Redis is FLUSHALLed; a new
deliverer takes over (the killed one's claims run out after the lease, --lease seconds
here), and still no message may go twice.

Prints one table: messages per second for the wave and per deliverer process, the time
the wave took, the hello-world Flask app's requests per second from the same run as the
machine's yardstick and the ratio, and the counts that must hold: every message sent,
none failed, none received twice (with --kill: at most the one message the killed
deliverer had in hand, sent again with the same Message-ID or SMS reference).

    python bench/outbox_delivery.py --messages 10000 --deliverers 2
    python bench/outbox_delivery.py --messages 2000 --deliverers 1
    python bench/outbox_delivery.py --messages 5000 --deliverers 2 --kill

It needs PostgreSQL and Redis (the database named by --database is dropped and recreated)
and wrk for the yardstick.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

from harness import (
    argument_parser,
    background_process,
    cohort_env,
    count_rows,
    fresh_app,
    hello_world,
    stop_process,
)

LEASE_SECONDS = 5


def queue_wave(app, messages: int, channel: str, wave: int) -> None:
    """`messages` reminders due now on `channel`, committed."""
    from app.db import utcnow
    from app.extensions import db
    from app.notifications.models import Channel
    from app.notifications.services import queue_message
    from tests.factories import make_institution

    with app.app_context():
        institution = make_institution()
        db.session.commit()
        now = utcnow()
        for n in range(messages):
            recipient = f"parent{n}@example.com" if channel == "email" else f"+86137{n:08d}"
            queue_message(
                institution_id=institution.id,
                channel=Channel(channel),
                recipient=recipient,
                template="lesson_reminder",
                context={
                    "child_name": f"Child {n}",
                    "course_title": "Maths Olympiad trial",
                    "lesson_title": "",
                    "starts_at": (now + timedelta(days=1)).isoformat(),
                    "place": "Room 3",
                    "online_url": "",
                },
                locale="zh_CN",
                dedupe_key=f"bench:{wave}:{n}",
                send_at=now,
            )
            if n % 1000 == 999:
                db.session.commit()
        db.session.commit()


def empty_outbox(app) -> None:
    from sqlalchemy import delete

    from app.extensions import db
    from app.notifications.models import OutboxMessage

    with app.app_context():
        db.session.execute(delete(OutboxMessage))
        db.session.commit()


def _cpu_seconds(pid: int) -> float:
    """CPU time a live process has used (user + system)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


WAITING = "SELECT count(*) FROM outbox_messages WHERE status = 'pending'"
COUNTS = {
    "sent": "SELECT count(*) FROM outbox_messages WHERE status = 'sent'",
    "failed": "SELECT count(*) FROM outbox_messages WHERE status = 'failed'",
    "still pending": WAITING,
}


def run_wave(args, app, channel: str, wave: int, sink_env: dict, received) -> dict:
    from app.extensions import db, redis_connection

    queue_wave(app, args.messages, channel, wave)
    env = cohort_env(args, OUTBOX_LEASE_SECONDS=LEASE_SECONDS, **sink_env)
    with app.app_context():
        db.engine.dispose()
    processes = [background_process(env, "--deliver") for _ in range(args.deliverers)]
    started = time.perf_counter()
    killed = False
    try:
        while True:
            waiting = count_rows(args.database, {"w": WAITING})["w"]
            if waiting == 0:
                break
            if args.kill and not killed and waiting <= args.messages // 2:
                os.killpg(processes[0].pid, signal.SIGKILL)
                processes[0].wait()
                with app.app_context():
                    redis_connection.client.flushall()
                processes[0] = background_process(env, "--deliver")
                killed = True
            if time.perf_counter() - started > args.timeout:
                break
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        cpu = sum(_cpu_seconds(process.pid) for process in processes)
    finally:
        for process in processes:
            stop_process(process)
    time.sleep(0.5)  # the last messages' receipts
    counts = count_rows(args.database, COUNTS)
    received = received()
    return {
        "seconds": seconds,
        "cpu": cpu,
        "counts": counts,
        "received": sum(received.values()),
        "twice": sum(1 for n in received.values() if n > 1),
    }


def main() -> None:
    from app.devtools.mailsink import MailSink
    from app.devtools.smssink import SmsSink

    parser = argument_parser(__doc__)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--deliverers", type=int, default=2)
    parser.add_argument("--channels", default="email,sms")
    parser.add_argument("--kill", action="store_true")
    parser.add_argument("--timeout", type=float, default=600)
    args = parser.parse_args()

    app = fresh_app(args.database, args.redis)
    hello = hello_world(args)
    mail, sms = MailSink().start(), SmsSink().start()
    received = {  # who got what, read from the sinks after each wave
        "email": lambda: Counter(mail.recipients),
        "sms": lambda: Counter(r["json"]["to"] for r in sms.requests if r["json"]),
    }
    sink_env = {
        "SMTP_HOST": "127.0.0.1",
        "SMTP_PORT": str(mail.port),
        "SMS_GATEWAY_URL": sms.url,
        "SMS_GATEWAY_TOKEN": "bench",
    }
    results = {}
    try:
        for wave, channel in enumerate(args.channels.split(",")):
            results[channel] = run_wave(args, app, channel, wave, sink_env, received[channel])
            empty_outbox(app)  # the next wave's figures are its own
    finally:
        mail.stop()
        sms.stop()

    killed = ", one SIGKILLed and Redis FLUSHALLed halfway" if args.kill else ""
    print(
        f"outbox delivery: {args.messages} reminders due at once per channel, "
        f"{args.deliverers} deliverer processes{killed}"
    )
    print(
        f"{'':<26}{'msg/s':>9}{'per process':>13}{'seconds':>9}{'CPU ms/msg':>12}{'x hello':>9}"
        "  counts"
    )
    print(f"{'hello-world GET / (req/s)':<26}{hello.rate:>9.1f}{'':>13}{'':>9}{'':>12}{1:>9.3f}")
    ok = True
    for channel, result in results.items():
        rate = args.messages / result["seconds"]
        counts = {
            **result["counts"],
            "received": result["received"],
            "received twice": result["twice"],
        }
        cpu = result["cpu"] * 1000 / args.messages  # the deliverers' own CPU per message
        print(
            f"{channel:<26}{rate:>9.1f}{rate / args.deliverers:>13.1f}{result['seconds']:>9.1f}"
            f"{cpu:>12.2f}{rate / hello.rate:>9.3f}  {counts}"
        )
        # A deliverer killed between handing a message over and recording it leaves that
        # one message to be sent again (with the same Message-ID or SMS reference).
        ok &= (
            counts["sent"] == args.messages
            and counts["received"] - counts["received twice"] == args.messages
            and counts["received twice"] <= (1 if args.kill else 0)
            and counts["failed"] == 0
        )
    print("every message exactly once" if ok else "NOT EXACTLY ONCE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
