"""Cohort as production runs it, on this machine: a database of its own on the local
PostgreSQL with the application's and the platform's roles (row-level security on), a
redis-server of its own on its own port, gunicorn, RQ workers and the scheduler as separate
processes. The fault tests (tests/faults/) and `bench/faults.py` start one, break parts of
it, and read the database afterwards.

    with Stack(admin_url, stripe_url=proxy.url, smtp_port=1025) as stack:
        stack.seed_demo()
        stack.start_web(); stack.start_worker(); stack.start_scheduler()
        stack.stop_redis(); ...; stack.start_redis()

`admin_url` is a role that may create databases and roles (the local `postgres`).
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import redis
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from app import migrate

ROOT = Path(__file__).resolve().parent.parent.parent
APP_ROLE = "cohort_app"
PLATFORM_ROLE = "cohort_platform"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn(port: int, env: dict, workers: int = 2, threads: int = 4, log=None):
    """Cohort under gunicorn (gthread) on 127.0.0.1:`port`, started and answering."""
    command = [sys.executable, "-m", "gunicorn", "-w", str(workers), "-k", "gthread"]
    command += ["--threads", str(threads), "-b", f"127.0.0.1:{port}", "--log-level", "warning"]
    server = subprocess.Popen(  # noqa: S603
        [*command, "app:create_app()"],
        cwd=ROOT,
        env=env,
        stdout=log or subprocess.DEVNULL,
        stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
        start_new_session=True,
    )
    if not _answers(f"http://127.0.0.1:{port}/healthz", 20):
        server.kill()
        raise RuntimeError("gunicorn did not start")
    return server


def _answers(url: str, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url, timeout=1)  # noqa: S310 - our own loopback server
            return True
        except OSError:  # refused while it boots, or a time-out
            time.sleep(0.2)
    return False


class Stack:
    def __init__(
        self,
        admin_url: str,
        *,
        stripe_url: str,
        smtp_port: int,
        workdir: Path,
        env: dict | None = None,
    ):
        self.admin_url = make_url(admin_url)
        self.database = f"cohort_stack_{uuid.uuid4().hex[:8]}"
        self.owner_url = self.admin_url.set(database=self.database)
        self.workdir = workdir
        self.redis_port = free_port()
        self.web_port = free_port()
        self.processes: dict[str, subprocess.Popen] = {}
        self.env = {
            **os.environ,
            "COHORT_ENV": "development",
            "SECRET_KEY": "stack-" + "s" * 40,
            "DATABASE_URL": self._url_as(APP_ROLE),
            "PLATFORM_DATABASE_URL": self._url_as(PLATFORM_ROLE),
            "REDIS_URL": f"redis://127.0.0.1:{self.redis_port}/0",
            "PUBLIC_URL": f"http://127.0.0.1:{self.web_port}",
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(smtp_port),
            "STRIPE_API_BASE": stripe_url,
            "STRIPE_SECRET_KEY": "sk_test_stack",
            "STRIPE_PUBLISHABLE_KEY": "pk_test_stack",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.web_port}"

    def _url_as(self, role: str) -> str:
        return self.owner_url.set(username=role, password=None).render_as_string(
            hide_password=False
        )

    # --- the database --------------------------------------------------------------------------

    def create_database(self) -> None:
        """A new database, migrated by its owner, usable by the application's role (held
        to row-level security) and the platform's (which bypasses it)."""
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.database}"'))
            for role, bypass in ((APP_ROLE, "NOBYPASSRLS"), (PLATFORM_ROLE, "BYPASSRLS")):
                exists = connection.scalar(
                    text("SELECT 1 FROM pg_roles WHERE rolname = :role"), {"role": role}
                )
                if not exists:
                    connection.execute(text(f"CREATE ROLE {role} LOGIN NOSUPERUSER {bypass}"))
        admin.dispose()
        owner = self.owner_url.render_as_string(hide_password=False)
        migrate.upgrade(owner)
        migrate.grant(owner, APP_ROLE, PLATFORM_ROLE)
        # Ids no other stack (nor the test suite) uses: Stripe's metadata names our
        # payments by institution and payment id, and the fake Stripe is shared.
        engine = create_engine(self.owner_url)
        with engine.begin() as connection:
            base = random.randrange(10**6, 10**9)
            for sequence in ("institutions_id_seq", "payments_id_seq"):
                connection.execute(text(f"ALTER SEQUENCE {sequence} RESTART WITH {base}"))
        engine.dispose()

    def drop_database(self) -> None:
        admin = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)'))
        admin.dispose()

    def engine(self):
        """An engine on the stack's database as its owner, to read what happened."""
        return create_engine(self.owner_url)

    def cohort(self, *args: str) -> str:
        """Run a `cohort` command against the stack (as the platform role); its output."""
        result = subprocess.run(  # noqa: S603
            [str(Path(sys.executable).parent / "cohort"), *args],
            cwd=ROOT,
            env={**self.env, "DATABASE_URL": self.env["PLATFORM_DATABASE_URL"]},
            capture_output=True,
            text=True,
            timeout=120,
            check=True,
        )
        return result.stdout

    # --- Redis ---------------------------------------------------------------------------------

    def start_redis(self) -> None:
        self.processes["redis"] = subprocess.Popen(  # noqa: S603
            [
                shutil.which("redis-server") or "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.workdir),
            ],
            stdout=self._log("redis"),
            stderr=subprocess.STDOUT,
            # Its own process group, as every process here: `stop` signals the group (a
            # redis-server in ours was never stopped, and kept answering on its port).
            start_new_session=True,
        )
        client = redis.Redis(port=self.redis_port)
        for _ in range(100):
            try:
                client.ping()
                return
            except redis.ConnectionError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop_redis(self) -> None:
        """Redis goes away (and comes back empty: it keeps nothing on disk)."""
        self.stop("redis", signal.SIGKILL)

    def redis(self) -> redis.Redis:
        return redis.Redis(port=self.redis_port)

    # --- processes -----------------------------------------------------------------------------

    def _log(self, name: str):
        return open(self.workdir / f"{name}.log", "ab")  # noqa: SIM115 - the process holds it

    def log(self, name: str) -> str:
        path = self.workdir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def start_web(self, workers: int = 2, threads: int = 4) -> None:
        self.processes["web"] = gunicorn(
            self.web_port, self.env, workers, threads, log=self._log("web")
        )

    def _start(self, name: str, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(  # noqa: S603
            [sys.executable, str(ROOT / "worker.py"), *args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log(name),
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own group: a kill takes its work horse too
        )
        self.processes[name] = process
        return process

    def start_worker(self, name: str = "worker", queues: tuple[str, ...] = ()) -> subprocess.Popen:
        """An RQ worker on every queue, or on `queues` (highest priority first)."""
        return self._start(name, *(("--queues", *queues) if queues else ()))

    def start_scheduler(self, name: str = "scheduler") -> subprocess.Popen:
        return self._start(name, "--scheduler")

    def start_deliverer(self, name: str = "deliverer") -> subprocess.Popen:
        return self._start(name, "--deliver")

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        process = self.processes.pop(name, None)
        if process is None or process.poll() is not None:
            return
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            return
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def alive(self, name: str) -> bool:
        process = self.processes.get(name)
        return process is not None and process.poll() is None

    # --- the whole ---------------------------------------------------------------------------

    def __enter__(self) -> Stack:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.create_database()
        self.start_redis()
        return self

    def __exit__(self, *exc) -> None:
        for name in list(self.processes):
            self.stop(name, signal.SIGKILL if name == "redis" else signal.SIGTERM)
        self.drop_database()


class Visitor:
    """A browser as far as Cohort can tell: cookies kept, the CSRF token taken from the
    page or, on a page served from the cache, asked for as static/js/forms.js does;
    redirects not followed (their Location is returned)."""

    def __init__(self, base: str, address: str | None = None):
        import http.cookiejar

        self.base = base
        self.headers = {"X-Forwarded-For": address} if address else {}
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(self.cookies), _NoRedirect()
        )

    def get(self, path: str, timeout: float = 30) -> tuple[int, str]:
        request = urllib.request.Request(self.base + path, headers=self.headers)  # noqa: S310
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace")

    def form_token(self, page: str, timeout: float = 30) -> str:
        """The CSRF token for the form on `page`."""
        import json
        import re

        match = re.search(r'name="csrf_token" type="hidden" value="([^"]*)"', page)
        if match is None:
            return ""
        if match.group(1):
            return match.group(1)
        status, answer = self.get("/csrf", timeout)
        return json.loads(answer)["token"] if status == 200 else ""

    def cookie_header(self) -> str:
        return "; ".join(f"{cookie.name}={cookie.value}" for cookie in self.cookies)

    def send(self, path: str, fields: dict, form_page: str | None = None, timeout: float = 60):
        """Open the page with the form, then send it: (status, body, Location)."""
        _status, page = self.get(form_page or path, timeout)
        token = self.form_token(page, timeout)
        return self.post(path, {"csrf_token": token, **fields}, timeout)

    def post(self, path: str, fields: dict, timeout: float = 60):
        """Send form fields (with their CSRF token) as it is: (status, body, Location)."""
        import urllib.parse

        body = urllib.parse.urlencode(fields, doseq=True).encode()
        request = urllib.request.Request(  # noqa: S310
            self.base + path, data=body, headers=self.headers
        )
        try:
            with self.opener.open(request, timeout=timeout) as response:
                return response.status, response.read().decode(), response.headers.get("Location")
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode(errors="replace"), error.headers.get("Location")


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None
