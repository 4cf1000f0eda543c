"""Load on the public lead form: throughput, latency and correctness under concurrency.

Starts Cohort under gunicorn against a throwaway PostgreSQL database, creates a school and
a form, then has many virtual parents (threads) open the form and send it, each family
several times and with its phone written in different formats. Prints submissions per
second, latency percentiles, status counts, and the correctness counts that must hold:
one contact per family, one open lead per family, no duplicate submissions inside the
double-submit window.

    python bench/form_submissions.py --requests 2000 --concurrency 16 --families 400

It needs PostgreSQL and Redis (defaults: the local servers; the database named by
--database is dropped and recreated). Rate limits are switched off for the server it
starts, since every request comes from one address.
"""

from __future__ import annotations

import argparse
import http.cookiejar
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PHONE_FORMATS = ("138 {a} {b}", "+86 138{a}{b}", "138-{a}-{b}", "+86138{a}{b}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def prepare(database_url: str, redis_url: str) -> tuple[str, str]:
    """A fresh database with the schema, one school and one form; returns (slug, code)."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')

    from app import create_app, migrate
    from app.extensions import db
    from app.leads import services as leads
    from app.tenancy import bind_institution
    from tests.factories import make_institution

    app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url})
    migrate.upgrade(app.config["DATABASE_URL"])
    with app.app_context():
        institution = make_institution(slug="bench-school")
        bind_institution(institution)
        form = leads.save_form(
            institution,
            None,
            title="Bench form",
            intro=None,
            fields=[*leads.default_fields(), {"key": "subject", "required": True}],
            consent_text=None,
            thank_you_message=None,
            redirect_url=None,
            is_open=True,
            closes_at=None,
            submission_cap=None,
        )
        result = institution.slug, form.code
        db.session.commit()
    return result


def start_server(port: int, workers: int, database_url: str, redis_url: str):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "0",
        "SECRET_KEY": "bench-" + "x" * 40,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-w",
            str(workers),
            "-k",
            "gthread",
            "--threads",
            "4",
            "-b",
            f"127.0.0.1:{port}",
            "--log-level",
            "warning",
            "app:create_app()",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1)
            return server
        except OSError:  # refused while it boots, or a time-out
            time.sleep(0.2)
    server.kill()
    raise SystemExit("the server did not start")


def submit(base: str, family: int, attempt: int) -> tuple[int, float]:
    """One parent: open the form (session cookie and CSRF token), then send it. Returns
    the POST's status and its latency in seconds."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
    )
    page = opener.open(base + "?utm_source=bench", timeout=30).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    number = f"{family:08d}"
    phone = PHONE_FORMATS[attempt % len(PHONE_FORMATS)].format(a=number[:4], b=number[4:])
    body = urllib.parse.urlencode(
        {"csrf_token": token, "parent_name": f"Parent {family}", "phone": phone, "subject": "Maths"}
    ).encode()
    started = time.perf_counter()
    try:
        status = opener.open(base + "?utm_source=bench", data=body, timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_302(self, req, fp, code, msg, headers):
        return fp


def check(database_url: str) -> dict:
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as connection:
        scalar = lambda sql: connection.execute(text(sql)).scalar()  # noqa: E731
        counts = {
            "contacts": scalar("SELECT count(*) FROM contacts"),
            "leads": scalar("SELECT count(*) FROM leads"),
            "submissions": scalar("SELECT count(*) FROM form_submissions"),
            "families with 2+ contacts": scalar(
                "SELECT count(*) FROM (SELECT phone FROM contacts GROUP BY phone "
                "HAVING count(*) > 1) d"
            ),
            "families with 2+ open leads": scalar(
                "SELECT count(*) FROM (SELECT contact_id FROM leads WHERE stage NOT IN "
                "('enrolled', 'lost') GROUP BY contact_id HAVING count(*) > 1) d"
            ),
            "submissions inside the double-submit window": scalar(
                "SELECT count(*) FROM form_submissions a JOIN form_submissions b ON "
                "a.form_id = b.form_id AND a.phone = b.phone AND a.id < b.id AND "
                "b.created_at - a.created_at < interval '10 minutes'"
            ),
        }
    engine.dispose()
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--database", default="postgresql+psycopg://postgres@127.0.0.1:5432/cohort_bench"
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379/13")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--families", type=int, default=400)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()

    slug, code = prepare(args.database, args.redis)
    port = free_port()
    server = start_server(port, args.workers, args.database, args.redis)
    base = f"http://127.0.0.1:{port}/{slug}/f/{code}"
    try:
        lock, attempts = threading.Lock(), Counter()

        def one(i: int):
            family = 13800000 + i % args.families
            with lock:
                attempts[family] += 1
                attempt = attempts[family]
            return submit(base, family, attempt)

        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(one, range(args.requests)))
        elapsed = time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)

    latencies = sorted(latency for _status, latency in results)
    statuses = Counter(status for status, _latency in results)
    quantiles = statistics.quantiles(latencies, n=100, method="inclusive")
    print(
        f"requests        {args.requests} from {args.concurrency} parallel clients, "
        f"{args.families} families, gunicorn {args.workers} workers x 4 threads"
    )
    print(
        f"throughput      {args.requests / elapsed:.1f} submissions/s "
        f"({elapsed:.1f} s, each after a GET of the form)"
    )
    print(
        f"POST latency    p50 {quantiles[49] * 1000:.1f} ms  p95 {quantiles[94] * 1000:.1f} ms"
        f"  p99 {quantiles[98] * 1000:.1f} ms  max {latencies[-1] * 1000:.1f} ms"
    )
    print(f"statuses        {dict(statuses)}")
    counts = check(args.database)
    for name, value in counts.items():
        print(f"{name:<46}{value}")
    expected = min(args.families, args.requests)
    ok = (
        statuses == Counter({302: args.requests})
        and counts["contacts"] == expected
        and counts["leads"] == expected
        and counts["families with 2+ contacts"] == 0
        and counts["families with 2+ open leads"] == 0
        and counts["submissions inside the double-submit window"] == 0
    )
    print("correct" if ok else "NOT CORRECT")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
