"""What the benchmarks share: a throwaway PostgreSQL database with the schema, Cohort and
the hello-world yardstick under the same server settings, load from `wrk`, and one table
of figures per run.

Every figure comes with the hello-world app's figure from the same run on the same server
settings (gunicorn, --workers x --threads, gthread; or, with --server granian, granian's
WSGI interface with --workers x --threads blocking threads) and the same number of
connections, and the ratio of the two: what the machine and the framework can do at most is the
yardstick, so the figures read the same on a faster or slower machine.

Load comes from `wrk` (apt-get install wrk), which costs the machine far less than the
server it measures. A POST benchmark first opens the page of each form as a parent's
browser would (a session cookie and a CSRF token each, untimed), writes the prepared POSTs
to a file, and has wrk send each of them exactly once (bench/wrk.lua).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DEFAULT_DATABASE = "postgresql+psycopg://postgres@127.0.0.1:5432/cohort_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/13"
SECRET_KEY = "bench-" + "x" * 40  # the servers' (a benchmark may sign links with it)
WRK_SCRIPT = Path(__file__).with_name("wrk.lua")

STRIPE_KEY = "sk_test_bench"
# The test card's fields as the public forms take them (localstripe accepts it).
TEST_CARD = {"card_number": "4242424242424242", "card_expiry": "12/30", "card_cvc": "123"}


def stripe_config(stripe_url: str) -> dict:
    """The settings that point Cohort at a localstripe (for fresh_app and the server)."""
    return {"STRIPE_API_BASE": stripe_url, "STRIPE_SECRET_KEY": STRIPE_KEY}


def argument_parser(doc: str, connections: int = 16) -> argparse.ArgumentParser:
    """The options every benchmark takes; each adds its own."""
    parser = argparse.ArgumentParser(
        description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--database", default=DEFAULT_DATABASE)
    parser.add_argument("--redis", default=DEFAULT_REDIS)
    parser.add_argument(
        "--server",
        choices=("gunicorn", "granian"),
        default="gunicorn",
        help="the WSGI server of both apps (granian: pip install granian)",
    )
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker")
    parser.add_argument("--connections", type=int, default=connections)
    parser.add_argument(
        "--seconds", type=int, default=10, help="how long the hello-world yardstick runs"
    )
    parser.add_argument(
        "--scale", type=int, default=1, help="units of data in the institution (bench/data.py)"
    )
    parser.add_argument(
        "--others", type=int, default=0, help="other institutions in the same database"
    )
    return parser


def fresh_app(database_url: str, redis_url: str, **config):
    """Drop and recreate the database, apply the migrations, empty the Redis database;
    return an app on them."""
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
    with app.app_context():
        from app.extensions import redis_connection

        redis_connection.client.flushdb()
    return app


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    """A WSGI app under gunicorn (gthread) or granian (--server) on a free port, for a
    `with` block."""

    def __init__(self, target: str, args, env: dict | None = None, ready_path: str = "/"):
        self.target, self.args, self.env, self.ready_path = target, args, env or {}, ready_path
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Server:
        workers, threads = str(self.args.workers), str(self.args.threads)
        if self.args.server == "granian":
            command = [sys.executable, "-m", "granian", "--interface", "wsgi"]
            command += ["--workers", workers, "--blocking-threads", threads]
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--log-level", "warning"]
            target = self.target.removesuffix("()")
            command += ["--factory", target] if target != self.target else [target]
        else:
            command = [sys.executable, "-m", "gunicorn", "-w", workers]
            command += ["-k", "gthread", "--threads", threads]
            command += ["--worker-connections", str(connections_per_worker(self.args))]
            command += ["-b", f"127.0.0.1:{self.port}", "--log-level", "warning", self.target]
        # Output to DEVNULL: a pipe nobody reads would block the server once it fills.
        self.process = subprocess.Popen(  # noqa: S603
            command,
            cwd=ROOT,
            env={**os.environ, **self.env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(150):
            try:
                urllib.request.urlopen(self.base + self.ready_path, timeout=1)
                return self
            except OSError:  # refused while it boots, or a time-out
                time.sleep(0.2)
        self.process.kill()
        raise SystemExit(f"{self.target} did not start")

    def memory_mib(self) -> list[float]:
        """Resident memory of each worker process."""
        children = subprocess.run(  # noqa: S603
            ["pgrep", "-P", str(self.process.pid)],  # noqa: S607
            capture_output=True,
            text=True,
            check=False,
        ).stdout.split()
        sizes = []
        for pid in children:
            status = Path(f"/proc/{pid}/status").read_text()
            kib = int(re.search(r"VmRSS:\s+(\d+)", status).group(1))
            sizes.append(kib / 1024)
        return sizes

    def __exit__(self, *exc) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=30)


def cohort_env(args, **env) -> dict[str, str]:
    """Cohort's settings in a benchmark: its database and Redis, rate limits off (every
    request of a benchmark comes from one address), and `env`."""
    return {
        "DATABASE_URL": args.database,
        "REDIS_URL": args.redis,
        "RATELIMIT_ENABLED": "0",
        "SECRET_KEY": SECRET_KEY,
        **{key: str(value) for key, value in env.items()},
    }


def cohort_server(args, **env) -> Server:
    """Cohort under gunicorn (or granian) with `cohort_env`."""
    return Server("app:create_app()", args, env=cohort_env(args, **env), ready_path="/healthz")


def background_process(env: dict[str, str], *arguments: str) -> subprocess.Popen:
    """`python worker.py *arguments` (an RQ worker, the deliverer) with `env`, in a
    session of its own (so it and its work horses are stopped together: `stop_process`)."""
    return subprocess.Popen(  # noqa: S603
        [sys.executable, str(ROOT / "worker.py"), *arguments],
        cwd=ROOT,
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def stop_process(process: subprocess.Popen) -> None:
    """Stop a `background_process` and whatever it started."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


@dataclass
class Figures:
    requests: int
    seconds: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: Counter = field(default_factory=Counter)
    socket_errors: int = 0
    extra: int = 0

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def _wrk(arguments: list[str], threads_to_finish: int = 0) -> Figures:
    """Run wrk with bench/wrk.lua. With `threads_to_finish`, the run ends (SIGINT) as soon
    as that many threads have sent their share, rather than at its duration."""
    if shutil.which("wrk") is None:
        raise SystemExit("the benchmarks need wrk: apt-get install wrk")
    process = subprocess.Popen(  # noqa: S603
        ["wrk", "--timeout", "30s", "-s", str(WRK_SCRIPT), *arguments],  # noqa: S607
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    finished = 0
    while finished < threads_to_finish:
        line = process.stderr.readline()
        if not line:
            break
        finished += line.strip() == "DONE"
    if threads_to_finish:
        process.send_signal(signal.SIGINT)
    output, errors = process.communicate()
    if process.returncode != 0:
        raise SystemExit(f"wrk failed: {errors}")
    line = next(line for line in output.splitlines() if line.startswith("WRK_JSON "))
    values = json.loads(line.removeprefix("WRK_JSON "))
    values["statuses"] = Counter({int(k): v for k, v in values["statuses"].items()})
    return Figures(**values)


def load_get(url: str, connections: int, seconds: int) -> Figures:
    """GET `url` from `connections` connections for `seconds`."""
    threads = min(2, connections)
    return _wrk([f"-t{threads}", f"-c{connections}", f"-d{seconds}s", url])


@dataclass
class Prepared:
    """A POST as a parent's browser would send it after opening the page."""

    path: str
    cookie: str
    body: str


def prepare_posts(base: str, posts: list[tuple[str, str, dict]]) -> list[Prepared]:
    """For each (page path, post path, fields): open the page as a parent's browser does
    and take its CSRF token. Untimed; a few at a time."""

    from app.devtools.stack import Visitor

    def one(post: tuple[str, str, dict]) -> Prepared:
        page_path, post_path, fields = post
        visitor = Visitor(base)
        _status, page = visitor.get(page_path)
        body = {"csrf_token": visitor.form_token(page), **fields}
        return Prepared(post_path, visitor.cookie_header(), urllib.parse.urlencode(body, True))

    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(one, posts))


@contextlib.contextmanager
def _request_files(lines: list[str], threads: int) -> Iterator[str]:
    """The requests, one a line, dealt round to `threads` files (`<name>.1` ... `<name>.N`,
    the N-th for wrk's N-th thread); yields `<name>`. Each thread reads only its own, so
    wrk's start costs the machine little whatever the number of threads."""
    directory = tempfile.mkdtemp(prefix="wrk-")
    name = os.path.join(directory, "requests.tsv")
    try:
        for n in range(threads):
            with open(f"{name}.{n + 1}", "w") as file:
                file.writelines(lines[n::threads])
        yield name
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def poll_gets(base: str, gets: list[Prepared], connections: int, seconds: int, etag: str):
    """GET each prepared path with its cookie, round and round for `seconds`, as open pages
    asking for updates do (If-None-Match of the newest ETag: bench/wrk.lua's cycle)."""
    threads = min(2, connections)
    lines = [f"GET\t{get.path}\t{get.cookie}\t\n" for get in gets]
    with _request_files(lines, threads) as name:
        arguments = [f"-t{threads}", f"-c{connections}", f"-d{seconds}s", base]
        return _wrk([*arguments, "--", name, str(threads), "cycle", etag])


def send_posts(base: str, posts: list[Prepared], connections: int) -> Figures:
    """Send each prepared POST once, from `connections` connections (one wrk thread each)."""
    connections = min(connections, len(posts))
    lines = [f"POST\t{post.path}\t{post.cookie}\t{post.body}\n" for post in posts]
    with _request_files(lines, connections) as name:
        arguments = [f"-t{connections}", f"-c{connections}", "-d3600s", base]
        return _wrk([*arguments, "--", name, str(connections)], connections)


def hello_world(args) -> Figures:
    """The yardstick: hello-world Flask under the same server settings and connections."""
    with Server("bench.hello:app", args) as server:
        load_get(server.base + "/", args.connections, 2)  # warm up
        return load_get(server.base + "/", args.connections, args.seconds)


def connections_per_worker(args) -> int:
    """gunicorn's --worker-connections for a run: the load's connections shared evenly.

    wrk opens all its connections at once, and with no cap the gthread worker that wakes
    first accepts most of them: in one run of bench/flash_sale.py one worker answered 9,293
    attempts and the other 592, on one core of two, and the figure halved (1,770 against
    5,871 attempts/s in the next run). Many phones arriving one by one share out by
    themselves; wrk's 32 at once do not. Both apps get the same cap."""
    return -(-args.connections // args.workers)


def server_line(args) -> str:
    if args.server == "granian":
        return f"granian {args.workers} workers x {args.threads} blocking threads (WSGI)"
    return (
        f"gunicorn {args.workers} workers x {args.threads} threads (gthread, "
        f"--worker-connections {connections_per_worker(args)})"
    )


def settings_line(args) -> str:
    return (
        f"{server_line(args)}, "
        f"{args.connections} connections, data x{args.scale}, {args.others} other institutions"
    )


def print_table(title: str, rows: list[tuple[str, Figures]], hello: Figures, unit: str) -> None:
    """One line per measured path, each with its ratio to the hello-world figure."""
    print(title)
    header = f"{'':<34}{unit + '/s':>12}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}"
    print(header + f"{'x hello':>9}  statuses")
    for name, figures in [("hello-world GET /", hello), *rows]:
        ratio = figures.rate / hello.rate if hello.rate else 0
        statuses = dict(sorted(figures.statuses.items()))
        if figures.socket_errors or figures.extra:
            statuses["socket errors"] = figures.socket_errors
            statuses["extra"] = figures.extra
        print(
            f"{name:<34}{figures.rate:>12.1f}{figures.p50_ms:>9.1f}{figures.p90_ms:>9.1f}"
            f"{figures.p99_ms:>9.1f}{figures.max_ms:>9.1f}{ratio:>9.3f}  {statuses}"
        )


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


def transactions(database_url: str) -> int:
    """The transactions the database has begun so far (pg_stat_database), not counting
    this reading's own (READING_TRANSACTIONS: a connection's start is one, the query
    another). An idle server connection reports its own up to 10 s later
    (PGSTAT_IDLE_INTERVAL): wait that long after a load before reading."""
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(database_url).render_as_string(hide_password=False)
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        counted = connection.execute(
            "SELECT xact_commit + xact_rollback FROM pg_stat_database "
            "WHERE datname = current_database()"
        ).fetchone()[0]
    global _readings
    _readings += 1
    return counted - (_readings - 1) * READING_TRANSACTIONS


READING_TRANSACTIONS = 2
_readings = 0
STATISTICS_DELAY = 11  # seconds: see transactions()


def print_counts(counts: dict[str, int]) -> None:
    width = max(len(name) for name in counts) + 2
    for name, value in counts.items():
        print(f"{name:<{width}}{value}")
