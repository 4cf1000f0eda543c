"""A local fake Stripe for development and tests: the `localstripe` package's aiohttp app,
served on loopback from a thread of this process.

Its own CLI binds every interface and pickles its store to a fixed file in /tmp, which
would leak one run's payments into another project's; here it listens on 127.0.0.1 only,
and keeps its store in memory (tests, benchmarks) or in a file of our choosing
(`cohort dev` keeps it in instance/, so that a restarted dev server still finds the
payments its database points at). The official SDK talks to it over HTTP through
STRIPE_API_BASE.
"""

from __future__ import annotations

import asyncio
import os
import pickle
import socket
import threading
import warnings
from pathlib import Path

import requests


def _keep_store_in(resources, path: Path) -> None:
    """Load localstripe's store from `path` and write it back there after every change
    (atomically, so a killed dev server leaves the last whole store)."""

    def dump(store) -> None:
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as file:
            pickle.dump(dict(store), file, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(partial, path)

    resources.Store.dump_to_disk = dump
    if path.exists():
        with open(path, "rb") as file:
            saved = pickle.load(file)  # noqa: S301 - our own file, written just above
        dict.clear(resources.store)
        dict.update(resources.store, saved)


class LocalStripe:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, store_file: Path | None = None):
        from localstripe import resources

        self._keeps_store = store_file is not None
        if store_file is None:
            resources.Store.dump_to_disk = lambda self: None  # memory only, see above
        else:
            _keep_store_in(resources, store_file)
        self.host = host
        self._socket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._socket.bind((host, port))
        self.port = self._socket.getsockname()[1]
        self.url = f"http://{host}:{self.port}"
        self._loop = asyncio.new_event_loop()
        self._runner = None

    def start(self) -> LocalStripe:
        from aiohttp import web

        with warnings.catch_warnings():  # localstripe registers plain functions as handlers
            warnings.simplefilter("ignore", DeprecationWarning)
            from localstripe.resources import store
            from localstripe.server import app

        if self._keeps_store:
            # localstripe writes its store when an object is added, not when one changes
            # (a PaymentIntent confirmed, captured): write it after every request too.
            async def keep(request, response) -> None:
                store.dump_to_disk()

            app.on_response_prepare.append(keep)

        started = threading.Event()

        async def serve() -> None:
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.SockSite(self._runner, self._socket).start()
            started.set()

        def run() -> None:
            asyncio.set_event_loop(self._loop)
            self._loop.run_until_complete(serve())
            self._loop.run_forever()

        threading.Thread(target=run, name="localstripe", daemon=True).start()
        if not started.wait(10):
            raise RuntimeError("localstripe did not start")
        return self

    def register_webhook(self, name: str, url: str, secret: str) -> None:
        """Have localstripe POST its signed events to `url` (it never retries)."""
        response = requests.post(
            f"{self.url}/_config/webhooks/{name}", data={"url": url, "secret": secret}, timeout=5
        )
        response.raise_for_status()

    def stop(self) -> None:
        async def shutdown() -> None:
            if self._runner is not None:
                await self._runner.cleanup()

        if self._loop.is_running():
            asyncio.run_coroutine_threadsafe(shutdown(), self._loop).result(10)
            self._loop.call_soon_threadsafe(self._loop.stop)
