"""What the benchmarks share: a throwaway PostgreSQL database with the schema, Cohort
under gunicorn, a parent's browser session (cookies, CSRF token, no redirects followed),
and latency percentiles."""

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
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/cohort_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


STRIPE_KEY = "sk_test_bench"
# The test card's fields as the public forms take them (localstripe accepts it).
TEST_CARD = {"card_number": "4242424242424242", "card_expiry": "12/30", "card_cvc": "123"}


def stripe_config(stripe_url: str) -> dict:
    """The settings that point Cohort at a localstripe (for fresh_app and the server)."""
    return {"STRIPE_API_BASE": stripe_url, "STRIPE_SECRET_KEY": STRIPE_KEY}


def fresh_app(database_url: str, redis_url: str, **config):
    """Drop and recreate the database, apply the migrations; return an app on it."""
    import psycopg
    from sqlalchemy.engine import make_url

    from app import create_app, migrate

    url = make_url(database_url)
    admin = url.set(database="postgres").render_as_string(hide_password=False)
    admin = admin.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{url.database}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{url.database}"')
    app = create_app({"DATABASE_URL": database_url, "REDIS_URL": redis_url, **config})
    migrate.upgrade(app.config["DATABASE_URL"])
    return app


def start_server(
    port: int, workers: int, database_url: str, redis_url: str, extra_env: dict | None = None
):
    """Cohort under gunicorn (gthread, 4 threads a worker) with rate limits off, since
    every request of a benchmark comes from one address."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_ENABLED": "0",
        "SECRET_KEY": "bench-" + "x" * 40,
        "PUBLIC_URL": f"http://127.0.0.1:{port}",
        **(extra_env or {}),
    }
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread"]
    command += ["--threads", "4", "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    # Output to DEVNULL: a pipe nobody reads would block the server once it fills.
    server = subprocess.Popen(  # noqa: S603
        [*command, "app:create_app()"],
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


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None

    def http_error_302(self, req, fp, code, msg, headers):
        return fp


def post_like_a_parent(url: str, fields: dict, page_url: str | None = None) -> tuple[int, float]:
    """Open the page (session cookie and CSRF token; `page_url` if another page of the
    site carries the form), then send the form. Returns the POST's status and its latency
    in seconds."""
    opener = urllib.request.build_opener(
        urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()), NoRedirect()
    )
    page = opener.open(page_url or url, timeout=30).read().decode()
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    body = urllib.parse.urlencode({"csrf_token": token, **fields}, doseq=True).encode()
    started = time.perf_counter()
    try:
        status = opener.open(url, data=body, timeout=30).status
    except urllib.error.HTTPError as error:
        status = error.code
    return status, time.perf_counter() - started


def latency_line(latencies: list[float]) -> str:
    latencies = sorted(latencies)
    q = statistics.quantiles(latencies, n=100, method="inclusive")
    return (
        f"p50 {q[49] * 1000:.1f} ms  p95 {q[94] * 1000:.1f} ms  p99 {q[98] * 1000:.1f} ms"
        f"  max {latencies[-1] * 1000:.1f} ms"
    )


def argument_parser(doc: str) -> argparse.ArgumentParser:
    """The options every benchmark takes; each adds its own."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    return parser


def run_clients(
    args, count: int, work: Callable[[str, int], object], extra_env: dict | None = None
) -> tuple[list, float]:
    """Start the server, call work(base_url, i) for i in range(count) from
    args.concurrency threads, stop the server; return the results and the seconds taken."""
    port = free_port()
    server = start_server(port, args.workers, args.database, args.redis, extra_env)
    base = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(lambda i: work(base, i), range(count)))
        return results, time.perf_counter() - started
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def count_rows(database_url: str, queries: dict[str, str], **params) -> dict[str, int]:
    """Each named SQL count, read after the run."""
    from sqlalchemy import create_engine, text

    engine = create_engine(database_url)
    with engine.connect() as connection:
        counts = {
            name: connection.execute(text(sql), params).scalar() for name, sql in queries.items()
        }
    engine.dispose()
    return counts
