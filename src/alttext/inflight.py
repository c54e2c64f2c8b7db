"""A memory budget for image bytes in flight (``ALTTEXT_MAX_INFLIGHT_MB``).

Two kinds of holders share one budget:

* **Leases**, one per HTTP request (``RequestGuard`` opens it): the request body's bytes,
  counted by the receive channel as the application reads them, and the bytes of URLs the
  request fetches (``runtime``'s metered transport). A lease is given back when the request
  ends. A body with a declared Content-Length is reserved whole before a byte of it is read
  (``Lease.reserve``): when the budget has no room it *waits* for room, first come first
  served, up to ``wait_s``; meanwhile the body is not read, so beyond the server's read buffer
  of the connection (uvicorn stops reading past about 64 KiB) its bytes stay with the client,
  and a burst of requests is served in turn instead of being refused. Bytes that are already
  arriving (a chunked body, a download) are taken at once or refused. Either way, past the
  budget the answer is 503 ``service_unavailable`` with ``Retry-After``, and a refused body is
  never kept, so a burst of uploads cannot run the process out of memory. Leases together may
  hold at most half of the budget (``BODY_SHARE``), so the requests already read can always
  get room to decode; one lease is charged at most that half, so a single large body can
  always proceed on its own.
  Through the URL fetcher's client (:class:`MeteredTransport`) the bytes of an image a request
  fetches are counted on its lease the same way while they download.
* **Holds** around the engine (``hold``): a decoded image takes far more memory than its file,
  so a hold costs ``EXPANSION`` times the image's bytes. Once the image is prepared, its holder
  shrinks the hold to what the prepared image occupies (``Hold.shrink``) for the rest of the
  request (the model call): the decode's room goes to the next request. A hold waits (first
  come, first served) up to ``wait_s`` for room, then gets the same 503. Holds belong to
  requests whose bodies are already in, so when room frees up, waiting holds are served before
  waiting bodies.

Everything here runs on the event loop: no locks, and giving bytes back never awaits.
"""

from __future__ import annotations

import asyncio
import contextvars
from collections import deque
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import httpx

from alttext.errors import ServiceUnavailable

# A compressed file expands several times when decoded; budget for that, not the file size.
EXPANSION = 4
# The part of the budget that request bodies and downloads (leases) may hold together.
BODY_SHARE = 0.5
RETRY_AFTER_S = 5

_BUSY = "The service is busy with other images; retry shortly."

_current: contextvars.ContextVar[Lease | None] = contextvars.ContextVar(
    "alttext_inflight_lease", default=None
)


def current_lease() -> Lease | None:
    """The open lease of the request this code runs for (None outside a request)."""
    lease = _current.get()
    return lease if lease is not None and not lease.closed else None


class Lease:
    """The bytes one request holds while it is read and served; see the module docstring."""

    def __init__(self, budget: InflightBudget) -> None:
        self.budget = budget
        self.held = 0
        self.closed = False

    def grow(self, nbytes: int) -> None:
        """Hold ``nbytes`` more, or raise 503 ``service_unavailable`` without holding any."""
        if nbytes <= 0 or self.closed:
            return
        # One lease is charged at most the leases' share: a body larger than that still runs
        # when it has the budget to itself.
        charge = min(nbytes, self.budget.body_max - self.held)
        if charge <= 0:
            return
        self.budget.take_body(charge)
        self.held += charge

    async def reserve(self, nbytes: int) -> None:
        """Hold ``nbytes`` more, waiting (in turn, up to the budget's ``wait_s``) for room;
        then 503 ``service_unavailable`` without holding any. For bytes not read yet."""
        if nbytes <= 0 or self.closed:
            return
        charge = min(nbytes, self.budget.body_max - self.held)
        if charge <= 0:
            return
        await self.budget.wait_body(charge)
        if self.closed:  # the request ended while it waited
            self.budget.give_back_body(charge)
            return
        self.held += charge

    def release(self) -> None:
        if self.closed:
            return
        self.closed = True
        held, self.held = self.held, 0
        self.budget.give_back_body(held)


class Hold:
    """A hold's share of the budget; ``shrink`` gives back what the decode no longer needs."""

    def __init__(self, budget: InflightBudget, cost: int) -> None:
        self.budget = budget
        self.cost = cost

    def shrink(self, nbytes: int) -> None:
        """Keep at most ``nbytes`` (never more than held) until the hold ends; the rest is
        given back now, and waiting holds and bodies get it."""
        keep = max(0, min(nbytes, self.cost))
        freed, self.cost = self.cost - keep, keep
        if freed:
            self.budget._give_back(freed)


class InflightBudget:
    """``wait_s`` (``ALTTEXT_INFLIGHT_WAIT_S``): how long a body or a hold waits for room."""

    def __init__(self, max_bytes: int, wait_s: float = 60.0) -> None:
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        self.body_max = int(max_bytes * BODY_SHARE)
        self.used = 0  # leases and holds together
        self.bodies = 0  # leases only
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()  # holds
        self._body_waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    @property
    def waiting(self) -> int:
        """Bodies and holds waiting for room."""
        return len(self._waiters) + len(self._body_waiters)

    # -- leases ------------------------------------------------------------------------------

    def lease(self) -> Lease:
        return Lease(self)

    @contextmanager
    def request(self) -> Iterator[Lease]:
        """A lease for the request running in this context, given back when the block ends."""
        lease = Lease(self)
        token = _current.set(lease)
        try:
            yield lease
        finally:
            lease.release()
            _current.reset(token)

    def _body_fits(self, nbytes: int) -> bool:
        return self.bodies + nbytes <= self.body_max and self.used + nbytes <= self.max_bytes

    def take_body(self, nbytes: int) -> None:
        """Take ``nbytes`` for a lease now, or 503 (bytes that are arriving already)."""
        if not self._body_fits(nbytes):
            raise ServiceUnavailable(_BUSY, retry_after=RETRY_AFTER_S)
        self.bodies += nbytes
        self.used += nbytes

    async def wait_body(self, nbytes: int) -> None:
        """Take ``nbytes`` for a lease, waiting in turn up to ``wait_s`` for room; then 503.
        Nobody overtakes a waiting body or hold, however small."""
        if not self._waiters and not self._body_waiters and self._body_fits(nbytes):
            self.bodies += nbytes
            self.used += nbytes
            return
        await self._wait(self._body_waiters, nbytes, body=True)

    def give_back_body(self, nbytes: int) -> None:
        self.bodies -= nbytes
        self._give_back(nbytes)

    # -- holds -------------------------------------------------------------------------------

    @asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[Hold]:
        """Room to decode an image of ``nbytes``; waits up to ``wait_s``, then 503."""
        held = Hold(self, min(self.max_bytes - self.body_max, nbytes * EXPANSION))
        await self._take(held.cost)
        try:
            yield held
        finally:
            self._give_back(held.cost)

    async def _take(self, cost: int) -> None:
        # First come, first served: nobody overtakes a waiting hold, however small.
        if not self._waiters and self.used + cost <= self.max_bytes:
            self.used += cost
            return
        await self._wait(self._waiters, cost, body=False)

    async def _wait(
        self, queue: deque[tuple[int, asyncio.Future[None]]], cost: int, *, body: bool
    ) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (cost, waiter)
        queue.append(entry)
        try:
            async with asyncio.timeout(self.wait_s):
                await waiter
        except BaseException as exc:
            if entry in queue:
                queue.remove(entry)
                self._wake()
            elif waiter.done() and not waiter.cancelled():
                # Granted just as time ran out: hand it on.
                if body:
                    self.give_back_body(cost)
                else:
                    self._give_back(cost)
            if isinstance(exc, TimeoutError):
                raise ServiceUnavailable(_BUSY, retry_after=RETRY_AFTER_S) from exc
            raise

    def _give_back(self, nbytes: int) -> None:
        self.used -= nbytes
        self._wake()

    def _wake(self) -> None:
        # Holds first: their requests are read and under way. A hold that does not fit yet
        # keeps everything behind it waiting, bodies too, so it is not starved by newcomers.
        while self._waiters:
            cost, waiter = self._waiters[0]
            if waiter.done():
                self._waiters.popleft()
                continue
            if self.used + cost > self.max_bytes:
                return
            self._waiters.popleft()
            self.used += cost
            waiter.set_result(None)
        while self._body_waiters:
            cost, waiter = self._body_waiters[0]
            if waiter.done():
                self._body_waiters.popleft()
                continue
            if not self._body_fits(cost):
                return
            self._body_waiters.popleft()
            self.bodies += cost
            self.used += cost
            waiter.set_result(None)


class MeteredTransport(httpx.AsyncBaseTransport):
    """Counts the body of every response read in a request's context on that request's lease:
    the declared Content-Length (up to ``max_declared``; a larger one is the fetcher's 413) at
    once, the rest as it arrives. Outside a request (queued jobs) nothing is counted here."""

    def __init__(self, inner: httpx.AsyncBaseTransport, *, max_declared: int) -> None:
        self._inner = inner
        self._max_declared = max_declared

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        lease = current_lease()
        if lease is not None and isinstance(response.stream, httpx.AsyncByteStream):
            declared = response.headers.get("content-length", "")
            size = int(declared) if declared.isdigit() else 0
            upfront = size if size <= self._max_declared else 0
            response.stream = _MeteredStream(response.stream, lease, upfront)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class _MeteredStream(httpx.AsyncByteStream):
    def __init__(self, inner: httpx.AsyncByteStream, lease: Lease, upfront: int) -> None:
        self._inner = inner
        self._lease = lease
        self._upfront = upfront

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self._lease.grow(self._upfront)
        counted, seen = self._upfront, 0
        async for chunk in self._inner:
            seen += len(chunk)
            if seen > counted:
                self._lease.grow(seen - counted)
                counted = seen
            yield chunk

    async def aclose(self) -> None:
        await self._inner.aclose()
