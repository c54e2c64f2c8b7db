"""A fake image host: a real HTTP(S) server on 127.0.0.1 in a background thread.

Routes are registered per test (``host.image("/cat.png", data)``, ``host.redirect(...)``,
``host.drip(...)``, ...) and every request is recorded (``host.requests``), so client code,
its timeouts and its parsing run against real sockets. Start it with
``tests.fakes.fixtures.running_image_host()``.
"""

from __future__ import annotations

import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.fakes.http_server import FakeHTTPServer

# A handler that waits (stall, drip) gives up after this long even if the test never stops it.
_MAX_WAIT_S = 60.0
_CHUNK = 64 * 1024


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # includes the query string
    headers: dict[str, str]  # lower-case names


Responder = Callable[["_Handler", threading.Event], None]


class FakeImageHost:
    """Register routes, then point clients at :meth:`url`. Unknown paths answer 404."""

    def __init__(self, ssl_context: ssl.SSLContext | None = None) -> None:
        self._routes: dict[str, Responder] = {}
        self._requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = FakeHTTPServer(("127.0.0.1", 0), _make_handler(self))
        if ssl_context is not None:
            # Handshake lazily in the handler thread so one slow client cannot block accept().
            self._server.socket = ssl_context.wrap_socket(
                self._server.socket, server_side=True, do_handshake_on_connect=False
            )
        self.scheme = "https" if ssl_context is not None else "http"
        self.host = "127.0.0.1"
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()  # releases stalled and dripping handlers
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    # -- addresses and records ---------------------------------------------------------------
    def url(self, path: str = "/", *, host: str | None = None) -> str:
        """Full URL of ``path``; ``host`` swaps in a name (e.g. one a fake resolver maps here)."""
        return f"{self.scheme}://{host or self.host}:{self.port}{path}"

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    def requests_to(self, path: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == path]

    # -- routes ------------------------------------------------------------------------------
    def route(self, path: str, responder: Responder) -> None:
        """Low-level: ``responder(handler, stopping)`` writes the whole response."""
        with self._lock:
            self._routes[path] = responder

    def image(
        self,
        path: str,
        body: bytes,
        *,
        content_type: str = "image/png",
        status: int = 200,
        headers: dict[str, str] | None = None,
    ) -> None:
        """Serve ``body`` with a Content-Length (any content type, e.g. a wrong one)."""
        extra = {"Content-Type": content_type, **(headers or {})}
        self.route(path, lambda h, _stop: h.send_body(status, body, extra))

    def error(self, path: str, status: int = 404) -> None:
        body = f"error {status}".encode()
        self.route(path, lambda h, _stop: h.send_body(status, body, {"Content-Type": "text/plain"}))

    def redirect(self, path: str, location: str, *, status: int = 302) -> None:
        self.route(path, lambda h, _stop: h.send_body(status, b"", {"Location": location}))

    def drip(self, path: str, *, interval_s: float = 0.05, chunk: bytes = b"\x89") -> None:
        """A 200 whose body never ends: ``chunk`` every ``interval_s`` until the client leaves."""

        def respond(h: _Handler, stop: threading.Event) -> None:
            h.send_head(200, {"Content-Type": "image/png"})
            waited = 0.0
            while waited < _MAX_WAIT_S and not stop.wait(interval_s):
                waited += interval_s
                if not h.write(chunk):
                    return

        self.route(path, respond)

    def stall(self, path: str, *, headers: dict[str, str] | None = None) -> None:
        """Never answer; or, with ``headers``, send a 200 with them and then no body."""

        def respond(h: _Handler, stop: threading.Event) -> None:
            if headers is not None:
                h.send_head(200, headers)
            stop.wait(_MAX_WAIT_S)

        self.route(path, respond)

    def huge(self, path: str, size: int, *, declare_length: bool = True) -> None:
        """``size`` zero bytes, with or without a Content-Length, until the client leaves."""

        def respond(h: _Handler, stop: threading.Event) -> None:
            head = {"Content-Type": "image/png"}
            if declare_length:
                head["Content-Length"] = str(size)
            h.send_head(200, head)
            block = bytes(_CHUNK)
            sent = 0
            while sent < size and not stop.is_set():
                n = min(_CHUNK, size - sent)
                if not h.write(block[:n]):
                    return
                sent += n

        self.route(path, respond)

    # -- used by the handler -----------------------------------------------------------------
    def _dispatch(self, handler: _Handler) -> None:
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=handler.command,
                    path=handler.path,
                    headers={k.lower(): v for k, v in handler.headers.items()},
                )
            )
            responder = self._routes.get(handler.path.split("?", 1)[0])
        if responder is None:
            handler.send_body(404, b"no such route", {"Content-Type": "text/plain"})
        else:
            responder(handler, self._stopping)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0: one request per connection and a body without Content-Length ends at close.
    protocol_version = "HTTP/1.0"
    fake: FakeImageHost

    def do_GET(self) -> None:
        self.fake._dispatch(self)

    def do_HEAD(self) -> None:
        self.fake._dispatch(self)

    def send_head(self, status: int, headers: dict[str, str]) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.flush()

    def send_body(self, status: int, body: bytes, headers: dict[str, str]) -> None:
        self.send_head(status, {"Content-Length": str(len(body)), **headers})
        self.write(body)

    def write(self, data: bytes) -> bool:
        """Write and flush; False once the client has gone away."""
        try:
            self.wfile.write(data)
            self.wfile.flush()
        except (OSError, ValueError):
            return False
        return True

    def log_message(self, format: str, *args: object) -> None:
        pass  # keep test output clean


def _make_handler(fake: FakeImageHost) -> type[_Handler]:
    return type("FakeImageHostHandler", (_Handler,), {"fake": fake})
