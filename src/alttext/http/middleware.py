"""Pure ASGI middleware: request ids and access logs (no body buffering, no image bytes)."""

from __future__ import annotations

import logging
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext.ids import new_id

_SANE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:\-]{1,128}$")
log = logging.getLogger("alttext.access")


class RequestIdMiddleware:
    """Echo a sane caller ``X-Request-ID`` or mint ``req_…``; log one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        supplied = None
        for name, value in scope["headers"]:
            if name == b"x-request-id":
                supplied = value.decode("latin-1")
                break
        request_id = supplied if supplied and _SANE_REQUEST_ID.match(supplied) else new_id("req")
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)["X-Request-ID"] = request_id
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            # Path only: no query string (it could carry a URL or a key), no body, no client IP.
            log.info(
                "request",
                extra={
                    "request_id": request_id,
                    "method": scope["method"],
                    "path": scope["path"],
                    "status": status,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                },
            )


class RateLimitHeadersMiddleware:
    """``RateLimit-*`` on every authenticated response, success or error alike."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_limits(message: Message) -> None:
            if message["type"] == "http.response.start":
                decision = scope.get("state", {}).get("ratelimit")
                if decision is not None:
                    headers = MutableHeaders(scope=message)
                    headers["RateLimit-Limit"] = str(decision.limit)
                    headers["RateLimit-Remaining"] = str(decision.remaining)
                    headers["RateLimit-Reset"] = str(decision.reset_s)
            await send(message)

        await self.app(scope, receive, send_with_limits)
