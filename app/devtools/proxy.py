"""An HTTP proxy that can make a service (localstripe) unreachable or slow, for the fault
tests and `bench/faults.py`.

    proxy = FaultyProxy("127.0.0.1", 12111).start()   # STRIPE_API_BASE = proxy.url
    proxy.refuse()                       # connections refused: Stripe is unreachable
    proxy.delay(5)                       # every answer 5 s late (the request goes through)
    proxy.delay(5, r"/capture$")         # only the answers to matching paths
    proxy.heal()                         # back to normal
    proxy.seen                           # ["POST /v1/payment_intents", ...]

A late answer is the nasty case: the request reached the service (a PaymentIntent was
made and authorised) but the caller gave up waiting.
"""

from __future__ import annotations

import http.client
import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-connection"}


class FaultyProxy:
    def __init__(self, target_host: str, target_port: int, port: int = 0):
        self.target = (target_host, target_port)
        self.port = port or _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.seen: list[str] = []
        self._delay: tuple[float, re.Pattern | None] = (0.0, None)
        self._server: ThreadingHTTPServer | None = None
        self._lock = threading.Lock()

    # --- faults ------------------------------------------------------------------------------

    def refuse(self) -> None:
        """Stop listening: connections are refused until `heal()`."""
        with self._lock:
            if self._server is not None:
                self._server.shutdown()
                self._server.server_close()
                self._server = None

    def delay(self, seconds: float, path_pattern: str | None = None) -> None:
        """Answer `seconds` late (requests whose path matches `path_pattern`, or all)."""
        self._delay = (seconds, re.compile(path_pattern) if path_pattern else None)
        self._listen()

    def heal(self) -> None:
        self._delay = (0.0, None)
        self._listen()

    # --- running -----------------------------------------------------------------------------

    def start(self) -> FaultyProxy:
        self._listen()
        return self

    def stop(self) -> None:
        self.refuse()

    def _listen(self) -> None:
        with self._lock:
            if self._server is not None:
                return
            proxy = self

            class Handler(_Forwarder):
                owner = proxy

            server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
            server.daemon_threads = True
            threading.Thread(target=server.serve_forever, daemon=True).start()
            self._server = server

    def _late_by(self, path: str) -> float:
        seconds, pattern = self._delay
        if seconds and (pattern is None or pattern.search(path)):
            return seconds
        return 0.0


class _Forwarder(BaseHTTPRequestHandler):
    owner: FaultyProxy
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):  # quiet
        pass

    def _forward(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        self.owner.seen.append(f"{self.command} {self.path.split('?')[0]}")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream = http.client.HTTPConnection(*self.owner.target, timeout=60)
        try:
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
        finally:
            upstream.close()
        late = self.owner._late_by(self.path)
        if late:
            time.sleep(late)
        try:
            self.send_response(response.status, response.reason)
            for key, value in response.getheaders():
                if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):  # the caller gave up waiting
            self.close_connection = True

    do_GET = do_POST = do_DELETE = _forward


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
