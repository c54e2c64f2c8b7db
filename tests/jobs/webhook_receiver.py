"""A webhook receiver: a real HTTP server on 127.0.0.1 that verifies every delivery the way a
customer's would, with ``standardwebhooks.Webhook(secret).verify(body, headers)``.

Tests script its answers (``statuses``: one per request, then 200) and read what it got.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

from standardwebhooks import Webhook, WebhookVerificationError

from tests.fakes.http_server import FakeHTTPServer


@dataclass(frozen=True)
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool  # with the receiver's secret at the time
    status: int  # what the receiver answered

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]


class Receiver:
    def __init__(self) -> None:
        self.secret: str | None = None
        self.statuses: deque[int] = deque()
        self.delay_s = 0.0
        self.answer_body = b"ok"
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/alttext"

    def reset(self, secret: str | None = None) -> None:
        with self._lock:
            self.secret = secret
            self.statuses.clear()
            self.delay_s = 0.0
            self.answer_body = b"ok"
            self.received.clear()

    def deliveries(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self._lock:
            secret = self.secret
            status = self.statuses.popleft() if self.statuses else 200
            delay, answer = self.delay_s, self.answer_body
        verified = False
        if secret is not None:
            try:
                Webhook(secret).verify(body, headers)
                verified = True
            except WebhookVerificationError:
                status = 401  # as a real receiver answers a forged delivery
        with self._lock:
            self.received.append(Received(handler.path, headers, body, verified, status))
        if delay:
            time.sleep(delay)
        handler.send_response(status)
        if status in (301, 302, 307, 308):
            handler.send_header("Location", "http://127.0.0.1:9/elsewhere")
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(answer)))
        handler.end_headers()
        with contextlib.suppress(OSError):  # the sender may have given up (timeout)
            handler.wfile.write(answer)


@contextlib.contextmanager
def run_receiver() -> Iterator[Receiver]:
    receiver = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            receiver._handle(self)

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = FakeHTTPServer(("127.0.0.1", 0), Handler)
    receiver.port = int(server.server_address[1])
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield receiver
    finally:
        server.shutdown()
        server.server_close()
