"""A local fake Stripe for development and tests: the `localstripe` package's aiohttp app,
served on loopback from a thread of this process.

Its own CLI binds every interface and pickles its store to a fixed file in /tmp, which
would leak one run's payments into the next; here it listens on 127.0.0.1 only and keeps
its store in memory. `cohort dev` starts one and the test fixtures start another; the
official SDK talks to it over HTTP through STRIPE_API_BASE.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import warnings

import requests


class LocalStripe:
    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        from localstripe import resources

        resources.Store.dump_to_disk = lambda self: None  # memory only, see above
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
            from localstripe.server import app

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
