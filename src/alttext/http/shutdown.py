"""Requests still running when the shutdown grace (``ALTTEXT_SHUTDOWN_GRACE_S``) runs out.

On SIGTERM uvicorn lets requests in flight finish for the grace period, then cancels their
tasks. The cancellation unwinds the request's work as a client's disconnect does (a generation
releases its reserved credit, an unfinished Idempotency-Key is freed), and reaches this
middleware; without it uvicorn answered a plain-text 500. Here it becomes a 503
``service_unavailable`` problem with ``Retry-After``: the client retries, on another process
or once this one is back, and nothing unfinished was charged.
"""

from __future__ import annotations

import asyncio
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext.errors import ServiceUnavailable, problem_response

log = logging.getLogger("alttext.http.shutdown")

RETRY_AFTER_S = 5
DETAIL = (
    "The service is shutting down and stopped this request before it finished; nothing "
    "unfinished was charged. Retry shortly (with the same Idempotency-Key, if you sent one)."
)


# What uvicorn's shutdown says when it cancels the requests still running after the grace
# (uvicorn.server.Server.shutdown); tests/http/test_shutdown.py runs the real server.
_SHUTDOWN_CANCEL = "timeout graceful shutdown exceeded"


def _by_shutdown(exc: asyncio.CancelledError) -> bool:
    return any(_SHUTDOWN_CANCEL in str(arg) for arg in exc.args)


class Requests:
    """The requests in flight, so the lifespan's shutdown waits for the cancelled ones to
    finish their cleanup (a reservation's release) before it closes the database."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def enter(self) -> None:
        self.count += 1
        self._idle.clear()

    def leave(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def drained(self, timeout_s: float) -> bool:
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        except TimeoutError:
            return False
        return True


class ShutdownBoundary:
    """A request cancelled before its answer started becomes a 503 problem."""

    def __init__(self, app: ASGIApp, requests: Requests | None = None) -> None:
        self.app = app
        self.requests = requests or Requests()

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

        self.requests.enter()
        try:
            await self.app(scope, receive, watch)
        except asyncio.CancelledError as exc:
            task = asyncio.current_task()
            if response_started or task is None or not _by_shutdown(exc):
                # Too late for an answer (the server closes the connection), or a cancellation
                # that is not the server's shutdown (a caller's own): it must go on unwinding.
                raise
            # The server asked this request to stop, and it has: the request is over. Undo the
            # cancellation's mark on the task so the answer below is sent normally.
            task.uncancel()
            request_id = scope.get("state", {}).get("request_id")
            log.warning("request cancelled at shutdown", extra={"request_id": request_id})
            problem = ServiceUnavailable(DETAIL, retry_after=RETRY_AFTER_S)
            await problem_response(problem, request_id)(scope, receive, send)
        finally:
            self.requests.leave()
