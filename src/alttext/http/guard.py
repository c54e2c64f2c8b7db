"""Limits on what a client may hold the server with: the size of the head, stalls in the body.

Uvicorn (with httptools, as installed) has no cap on the request line and headers and no
timeout while a body is being received: one client could send a megabyte of headers, or part
of a body and then nothing, and hold the request for ever. ``RequestGuard`` answers the first
with 431 and the second with 408, both with ``Connection: close``. A client that leaves in the
middle of its body is logged here at info; the read then ends with Starlette's
``ClientDisconnect``, answered as 499 (``alttext.errors``), never as a 500.

The guard also opens the request's lease on the memory budget (``alttext.inflight``) and
counts the body into it as the application reads it: the declared Content-Length is taken at
the first read, before any byte is accepted, and a body without one grows the lease piece by
piece. Past the budget the read raises 503 ``service_unavailable`` with ``Retry-After``; before
that answer goes out, the rest of the body is read and thrown away (nothing of it is kept), so
the client, still sending, gets the answer instead of a reset connection. A body that does not
end within ``DRAIN_MAX_BYTES`` or the read timeout gets the answer with ``Connection: close``.
Nothing is counted before the application reads, so a client without a valid key cannot hold
the budget. When the budget is full, a declared body waits for room in turn (up to
``ALTTEXT_INFLIGHT_WAIT_S``, unread meanwhile) before it is refused; bytes that arrive without
a declared length are refused at once. The lease is given back when the response has been
sent. And the guard gives the request its place in the CPU queue (``alttext.runtime.arrival``):
the order of arrival.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext.config import Settings
from alttext.errors import HeadersTooLarge, RequestTimeout, ServiceUnavailable, problem_response
from alttext.inflight import InflightBudget, Lease
from alttext.runtime import arrival

log = logging.getLogger("alttext.http")

# A refused body is read to its end and discarded up to this size; a longer one is cut off.
DRAIN_MAX_BYTES = 128 * 1024 * 1024


def _setting(scope: Scope, name: str) -> Any:
    """A setting of the app serving ``scope`` (its services are built in the lifespan)."""
    services = getattr(getattr(scope.get("app"), "state", None), "services", None)
    settings = getattr(services, "settings", None)
    if isinstance(settings, Settings):
        return getattr(settings, name)
    return Settings.model_fields[name].default


def head_size(scope: Scope) -> int:
    """The bytes of the request target and the headers, counted as sent ("name: value\\r\\n")."""
    target = len(scope.get("raw_path") or scope["path"].encode()) + len(scope["query_string"])
    return target + sum(len(name) + len(value) + 4 for name, value in scope["headers"])


def _budget(scope: Scope) -> InflightBudget | None:
    services = getattr(getattr(scope.get("app"), "state", None), "services", None)
    budget = getattr(services, "inflight", None)
    return budget if isinstance(budget, InflightBudget) else None


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            # A malformed value is the body reader's 400 (alttext.http.body).
            return int(value) if value.isdigit() else None
    return None


class _Body:
    """The app's receive channel while the body arrives, with a deadline for each piece and
    the body's bytes counted into the request's lease."""

    def __init__(
        self,
        receive: Receive,
        timeout_s: float,
        request_id: str | None,
        lease: Lease | None = None,
        declared: int | None = None,
    ) -> None:
        self._receive = receive
        self._timeout_s = timeout_s
        self._request_id = request_id
        self._lease = lease
        self._declared = declared
        self._counted = 0  # bytes of the body taken on the lease so far
        self._seen = 0
        self.complete = False
        self.timed_out = False
        self.refused = False

    def _count(self, nbytes: int) -> None:
        """Take ``nbytes`` more on the lease (bytes that have arrived), or refuse the body
        with 503."""
        if self._lease is None or nbytes <= 0:
            return
        try:
            self._lease.grow(nbytes)
        except ServiceUnavailable:
            self._refuse(nbytes)
            raise
        self._counted += nbytes

    async def _reserve(self, nbytes: int) -> None:
        """Take the declared body on the lease before reading it, waiting in turn for room
        (``InflightBudget.wait_s``), or refuse the body with 503."""
        if self._lease is None or nbytes <= 0:
            return
        try:
            await self._lease.reserve(nbytes)
        except ServiceUnavailable:
            self._refuse(nbytes)
            raise
        self._counted += nbytes

    def _refuse(self, nbytes: int) -> None:
        self.refused = True
        log.info(
            "request body refused: memory budget full",
            extra={"request_id": self._request_id, "bytes": nbytes},
        )

    async def drain(self) -> bool:
        """Read the rest of a refused body and drop it; whether it ended (the connection is
        then fit for the next request)."""
        drained = 0
        try:
            async with asyncio.timeout(self._timeout_s):
                while not self.complete:
                    message = await self._receive()
                    if message["type"] != "http.request":
                        return False  # the client left
                    drained += len(message.get("body", b""))
                    if drained > DRAIN_MAX_BYTES:
                        return False
                    self.complete = not message.get("more_body", False)
        except TimeoutError:
            return False
        return True

    async def receive(self) -> Message:
        if self.complete:
            # Only http.disconnect can come now; waiting for it (http/disconnect.py) is no stall.
            return await self._receive()
        if self._seen == 0 and self._counted == 0 and self._declared:
            # The whole declared body, before a byte of it is read: while it waits for room
            # the client's bytes stay unread (the server stops reading the connection).
            await self._reserve(self._declared)
        try:
            async with asyncio.timeout(self._timeout_s):
                message = await self._receive()
        except TimeoutError:
            self.timed_out = True
            log.info(
                "request body timed out",
                extra={"request_id": self._request_id, "timeout_s": self._timeout_s},
            )
            raise RequestTimeout(
                f"No part of the request body arrived for {self._timeout_s:g} seconds."
            ) from None
        if message["type"] == "http.disconnect":
            log.info(
                "client disconnected during the request body",
                extra={"request_id": self._request_id},
            )
        else:
            self._seen += len(message.get("body", b""))
            if self._seen > self._counted:
                self._count(self._seen - self._counted)
            if not message.get("more_body", False):
                self.complete = True
        return message


class RequestGuard:
    """431 for a head over ALTTEXT_MAX_HEADER_BYTES; 408 when the body stalls for longer than
    ALTTEXT_BODY_READ_TIMEOUT_S between two pieces (the timeout is raised inside the app's read,
    so the route answers it through the error handlers)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = scope.get("state", {}).get("request_id")
        cap: int = _setting(scope, "max_header_bytes")
        size = head_size(scope)
        if size > cap:
            log.info("request head too large", extra={"request_id": request_id, "bytes": size})
            problem = HeadersTooLarge(
                f"The request line and headers are {size} bytes; the limit is {cap} bytes."
            )
            response = problem_response(problem, request_id, headers={"Connection": "close"})
            await response(scope, receive, send)
            return
        budget = _budget(scope)
        # The request's place in the CPU queue is its arrival (alttext.runtime).
        with arrival():
            if budget is None:
                await self._serve(scope, receive, send, request_id, None)
                return
            with budget.request() as lease:
                await self._serve(scope, receive, send, request_id, lease)

    async def _serve(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        request_id: str | None,
        lease: Lease | None,
    ) -> None:
        timeout_s = _setting(scope, "body_read_timeout_s")
        body = _Body(receive, timeout_s, request_id, lease, _declared_length(scope))

        async def send_closing(message: Message) -> None:
            if message["type"] == "http.response.start":
                # A refused body's sender is still sending: let it finish, then answer.
                in_sync = body.refused and not body.timed_out and await body.drain()
                # After a stalled or cut-off body the connection is in an unknown state: end it.
                if body.timed_out or (body.refused and not in_sync):
                    MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, body.receive, send_closing)
