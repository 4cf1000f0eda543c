"""A local SMS gateway for development and tests: an HTTP server on loopback that takes
the same JSON POSTs as a real gateway, keeps them, and answers with a chosen status.

`cohort dev` starts one and prints every text message; the tests make it answer 500 to
see retries happen.
"""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class SmsSink:
    def __init__(self, host: str = "127.0.0.1", port: int = 0, on_message: Callable | None = None):
        self.status = 200
        self.requests: list[dict] = []  # {"authorization": ..., "json": {...}}
        sink = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # kept-alive connections, as real gateways keep

            def setup(self):
                super().setup()
                # Answers go out at once (not held back waiting for an ACK).
                self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

            def do_POST(self):  # noqa: N802 - the http.server API
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                if len(raw) < length:  # the sender went away mid-request: nothing arrived
                    self.close_connection = True
                    return
                try:
                    payload = json.loads(raw or b"{}")
                except ValueError:
                    payload = None
                if not isinstance(payload, dict) or "to" not in payload:
                    payload = None  # a gateway refuses a message without a recipient
                status = sink.status if payload is not None else 400
                sink.requests.append(
                    {"authorization": self.headers.get("Authorization"), "json": payload}
                )
                if status < 300 and on_message:
                    on_message(payload)
                body = b"{}" if status < 300 else b'{"error": "gateway unavailable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self._server = ThreadingHTTPServer((host, port), Handler)
        self.port = self._server.server_port
        self.url = f"http://{host}:{self.port}/send"

    def start(self) -> SmsSink:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
