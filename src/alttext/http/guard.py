"""Limits on what a client may hold the server with: the size of the head, stalls in the body.

Uvicorn (with httptools, as installed) has no cap on the request line and headers and no
timeout while a body is being received: one client could send a megabyte of headers, or part
of a body and then nothing, and hold the request for ever. ``RequestGuard`` answers the first
with 431 and the second with 408, both with ``Connection: close``. A client that leaves in the
middle of its body is logged here at info; the read then ends with Starlette's
``ClientDisconnect``, answered as 499 (``alttext.errors``), never as a 500.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext.config import Settings
from alttext.errors import HeadersTooLarge, RequestTimeout, problem_response

log = logging.getLogger("alttext.http")


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


class _Body:
    """The app's receive channel while the body arrives, with a deadline for each piece."""

    def __init__(self, receive: Receive, timeout_s: float, request_id: str | None) -> None:
        self._receive = receive
        self._timeout_s = timeout_s
        self._request_id = request_id
        self.complete = False
        self.timed_out = False

    async def receive(self) -> Message:
        if self.complete:
            # Only http.disconnect can come now; waiting for it (http/disconnect.py) is no stall.
            return await self._receive()
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
        elif not message.get("more_body", False):
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
        body = _Body(receive, _setting(scope, "body_read_timeout_s"), request_id)

        async def send_closing(message: Message) -> None:
            # After a stalled body the connection is in an unknown state: end it.
            if message["type"] == "http.response.start" and body.timed_out:
                MutableHeaders(scope=message)["Connection"] = "close"
            await send(message)

        await self.app(scope, body.receive, send_closing)
