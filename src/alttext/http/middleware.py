"""Pure ASGI middleware: request ids, access logs, request metrics, rate-limit headers and the
error boundary (no body buffering, no image bytes).

app.py installs them in this order, outermost first::

    RequestIdMiddleware > RequestMetricsMiddleware > RequestGuard > RateLimitHeadersMiddleware
        > ErrorBoundary > Starlette's exception handlers (alttext.errors) > routes

Every answer, the guard's 431/408 and the boundary's 500 included, carries ``X-Request-ID``
and gets its access-log line; every answer after authentication carries ``RateLimit-*``.
"""

from __future__ import annotations

import logging
import re
import time

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext import metrics
from alttext.errors import INTERNAL_DETAIL, InternalError, log_unexpected, problem_response
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
        # Stays 500 only if no response starts: an error after the start, which Starlette's
        # outermost handler logs and uvicorn answers by closing the connection.
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


class ErrorBoundary:
    """An exception no handler took becomes a logged 500 problem, sent as an ordinary response.

    Starlette's own last resort (``ServerErrorMiddleware``) sits outside every middleware and
    re-raises: its 500 had no ``X-Request-ID`` and uvicorn then dropped the connection without
    ``Connection: close``, so a client's next request on it failed. Answered here, the 500
    carries the id that is logged, and the connection stays usable.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        response_started = False

        async def watch(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            if response_started:
                raise  # too late for an answer: Starlette logs it, uvicorn closes the connection
            request_id = scope.get("state", {}).get("request_id")
            log_unexpected(exc, request_id)
            await problem_response(InternalError(INTERNAL_DETAIL), request_id)(scope, receive, send)


def route_template(scope: Scope, root_path: str = "") -> str:
    """The template of the route that answered (``/v1/jobs/{job_id}``), never the raw path, so
    the number of series stays bounded whatever paths clients send.

    FastAPI keeps an included router's routes unflattened: ``scope["route"]`` is then the route
    as its own router declares it (without the prefixes), and the full template is only in the
    context FastAPI leaves under ``scope["fastapi"]``. A mount (``/static``) leaves no route but
    extends ``root_path``. tests/test_metrics.py pins all three against the installed FastAPI.
    """
    context = scope.get("fastapi", {}).get("effective_route_context")
    template = getattr(context, "path_format", None)
    if isinstance(template, str) and template:
        return template
    template = getattr(scope.get("route"), "path_format", None)
    if isinstance(template, str) and template:
        return template
    mounted = scope.get("root_path", "")
    if isinstance(mounted, str) and len(mounted) > len(root_path) and mounted.startswith(root_path):
        return mounted[len(root_path) :] + "/{path}"
    return metrics.UNMATCHED_ROUTE


class RequestMetricsMiddleware:
    """Count and time every request by route template, method and status (``/metrics``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        root_path = scope.get("root_path", "")
        started = time.perf_counter()
        status = 500  # as in RequestIdMiddleware: no response started means the server failed

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            # The router fills in the route while the request runs, so it is read afterwards.
            metrics.record_request(
                route_template(scope, root_path),
                scope["method"],
                status,
                time.perf_counter() - started,
            )
