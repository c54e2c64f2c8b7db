"""Building the process's long-lived parts from settings: engine, provider, pools, clients.

Nothing here runs at import time; the app's lifespan and the CLI call ``open_runtime``.

CPU work (decoding, resizing, OCR, classification, the rules' language checks) runs in one
:class:`CpuPool` per process: as many threads as cores (``ALTTEXT_WORKERS``), tasks taken in
the order their requests arrived, and a bounded queue in front of it. The queue is bounded by
the wait it means, not by a fixed length: a request's first task is admitted while the
estimated wait (tasks waiting x the moving average of a task's run time / threads) is within
``ALTTEXT_CPU_QUEUE_WAIT_S``, and never when ``ALTTEXT_CPU_QUEUE`` tasks already wait (a hard
cap, should the estimate be off). So a burst that the pool will get through in reasonable time
is held, whatever its size, and a process that is truly behind refuses newcomers at once with
503 ``service_unavailable`` and ``Retry-After`` instead of piling up. Once admitted, a
request's later tasks are never refused, and they run ahead of requests that arrived after it,
so a request that has paid for its model call is not starved by newcomers. Work outside an
HTTP request (queued jobs, the CLI) waits its turn in submission order and is never refused:
its concurrency has caps of its own.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import heapq
import importlib.util
import itertools
import math
import os
import ssl
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from typing import Any, ParamSpec, TypeVar

import aiohttp
import httpx

from alttext import metrics
from alttext.config import Settings
from alttext.describe.classify import ImageClassifier
from alttext.describe.engine import Engine
from alttext.describe.fetch import FetchLimits
from alttext.describe.image import ImageLimits
from alttext.describe.ocr import OcrReader
from alttext.describe.providers.base import Provider
from alttext.describe.providers.breaker import BreakerConfig, CircuitBreakers
from alttext.describe.providers.local import LocalProvider
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.describe.rules import LanguageIdentifier
from alttext.errors import ServiceUnavailable
from alttext.inflight import InflightBudget, MeteredTransport


@functools.cache
def shared_ocr_reader() -> OcrReader:
    """The OCR models load once per process (about a second) and are shared by every app."""
    return OcrReader()


@functools.cache
def shared_image_classifier() -> ImageClassifier:
    """The offline engine's image classifier (an ONNX model in the wheel) loads once per process."""
    return ImageClassifier()


@functools.cache
def shared_language_identifier() -> LanguageIdentifier:
    """The language model (rule 10) loads once per process too (about a second)."""
    return LanguageIdentifier()


P = ParamSpec("P")
T = TypeVar("T")

# Arrival numbers, process-wide: a lower number arrived earlier and is served first.
_arrivals = itertools.count()


@dataclass(eq=False)
class _Ticket:
    """One HTTP request's place in the CPU queue."""

    seq: int
    admitted: bool = False
    open: bool = True


_ticket: contextvars.ContextVar[_Ticket | None] = contextvars.ContextVar(
    "alttext_cpu_ticket", default=None
)


@contextmanager
def arrival() -> Iterator[None]:
    """Code in this block serves one HTTP request that arrives now (``RequestGuard``): its CPU
    tasks run before those of requests that arrive later, and its first task may be refused
    when the queue is full. Tasks created in the block but run after it (queued jobs) count as
    background work."""
    ticket = _Ticket(next(_arrivals))
    token = _ticket.set(ticket)
    try:
        yield
    finally:
        ticket.open = False
        _ticket.reset(token)


@contextmanager
def background() -> Iterator[None]:
    """Code in this block is background work even if it was started from a request's context
    (a queued job run by the in-memory broker copies the context of the request that queued
    it): its tasks wait their turn in submission order and are never refused."""
    token = _ticket.set(None)
    try:
        yield
    finally:
        _ticket.reset(token)


@dataclass(eq=False)
class _Task:
    future: Future[Any]
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any] = field(default_factory=dict)


class CpuPool(Executor):
    """A thread pool sized to the cores with a fair, bounded queue (module docstring).

    ``workers`` threads take tasks in arrival order (the arrival of the request a task belongs
    to, then submission order). A new request's first task is refused when ``queue`` tasks
    already wait, or when ``max_wait_s`` is set and the estimated wait (:attr:`expected_wait_s`)
    is longer. An ``Executor``, so ``loop.run_in_executor`` and everything built on it (the
    engine, the local provider) go through it unchanged.
    """

    def __init__(
        self,
        workers: int,
        queue: int,
        *,
        max_wait_s: float | None = None,
        task_s: float = 0.05,
        name: str = "alttext-cpu",
    ) -> None:
        """``task_s``: the first estimate of a task's run time, until tasks have run."""
        if workers < 1 or queue < 0:
            raise ValueError("a CPU pool needs at least one worker and a queue of 0 or more")
        if max_wait_s is not None and max_wait_s < 0:
            raise ValueError("a CPU pool's wait bound is 0 s or more")
        self.workers = workers
        self.queue = queue
        self.max_wait_s = max_wait_s
        self._threads = ThreadPoolExecutor(max_workers=workers, thread_name_prefix=name)
        self._lock = threading.Lock()
        self._waiting: list[tuple[int, int, _Task]] = []  # a heap
        self._running = 0
        self._order = itertools.count()
        self._shutdown = False
        self._task_s = task_s  # moving average of one task's run time: waits, Retry-After

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    @property
    def running(self) -> int:
        return self._running

    @property
    def task_s(self) -> float:
        """The moving average of one task's run time, in seconds."""
        return self._task_s

    @property
    def expected_wait_s(self) -> float:
        """How long a task submitted now would wait before a thread takes it, at the recent
        pace: the tasks ahead of it x the average run time / the threads."""
        return len(self._waiting) * self._task_s / self.workers

    def _full(self) -> bool:
        """Whether a new request's first task is refused now (called under the lock)."""
        if len(self._waiting) >= self.queue:
            return True
        return self.max_wait_s is not None and self.expected_wait_s > self.max_wait_s

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        ticket = _ticket.get()
        if ticket is not None and not ticket.open:
            ticket = None  # the request is over: this is background work it started
        future: Future[T] = Future()
        task = _Task(future, fn, args, kwargs)
        with self._lock:
            if self._shutdown:
                raise RuntimeError("cannot schedule new futures after shutdown")
            start = self._running < self.workers
            if start:
                self._running += 1
            else:
                if ticket is not None and not ticket.admitted and self._full():
                    raise ServiceUnavailable(
                        "The service is busy: too many images are waiting to be processed. "
                        "Retry shortly.",
                        retry_after=self._retry_after(),
                    )
                seq = ticket.seq if ticket is not None else next(_arrivals)
                heapq.heappush(self._waiting, (seq, next(self._order), task))
            if ticket is not None:
                ticket.admitted = True
        if start:
            self._threads.submit(self._work, task)
        else:
            future.add_done_callback(self._forget_cancelled)
        return future

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        with self._lock:
            self._shutdown = True
            dropped = [task for _, _, task in self._waiting] if cancel_futures else []
            if cancel_futures:
                self._waiting.clear()
        for task in dropped:
            task.future.cancel()
        self._threads.shutdown(wait=wait, cancel_futures=cancel_futures)

    def _retry_after(self) -> int:
        """Seconds until the queue has drained at the recent pace (1 to 30)."""
        backlog = len(self._waiting) + self._running
        return max(1, min(30, math.ceil(backlog * self._task_s / self.workers)))

    def _forget_cancelled(self, future: Future[Any]) -> None:
        # A waiting task whose caller gave up (client gone, timeout) leaves the queue at once.
        if not future.cancelled():
            return
        with self._lock:
            kept = [entry for entry in self._waiting if entry[2].future is not future]
            if len(kept) != len(self._waiting):
                heapq.heapify(kept)
                self._waiting = kept

    def _work(self, first: _Task) -> None:
        """One worker thread's loop: run a task, then the next waiting one, until none waits."""
        task: _Task | None = first
        while task is not None:
            if task.future.set_running_or_notify_cancel():
                started = time.perf_counter()
                try:
                    result = task.fn(*task.args, **task.kwargs)
                except BaseException as exc:
                    task.future.set_exception(exc)
                else:
                    task.future.set_result(result)
                    del result
                elapsed: float | None = time.perf_counter() - started
            else:
                elapsed = None
            # Drop the task's references to images now, not when the thread next runs one.
            task.args, task.kwargs = (), {}
            with self._lock:
                if elapsed is not None:
                    self._task_s += (elapsed - self._task_s) * 0.1
                task = heapq.heappop(self._waiting)[2] if self._waiting else None
                if task is None:
                    self._running -= 1


def skip_missing_sniffio() -> None:
    """httpcore imports ``sniffio`` on every pool operation to learn the async library; when it
    is not installed each failed import searches ``sys.path`` again (about 0.15 ms, several
    times per upstream call, on the event loop). Marking the module absent makes the same
    ImportError immediate; nothing changes when sniffio is installed."""
    if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
        sys.modules["sniffio"] = None  # type: ignore[assignment]


@dataclass
class Runtime:
    """What every request needs and nothing request-specific: built once per process."""

    settings: Settings
    http: httpx.AsyncClient
    executor: CpuPool
    ocr: OcrReader
    provider: Provider
    engine: Engine
    image_limits: ImageLimits
    fetch_limits: FetchLimits
    # The model circuits of this process (None: the offline engine, or breakers turned off).
    breakers: CircuitBreakers | None = None


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        min_side=settings.min_image_side,
        target_long_side=settings.target_long_side,
        text_long_side=settings.text_long_side,
    )


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        max_bytes=settings.max_image_bytes,
        total_timeout_s=settings.fetch_timeout_s,
        allow_private=settings.allow_private_urls,
    )


def build_provider(
    settings: Settings,
    http: aiohttp.ClientSession,
    ocr: OcrReader,
    executor: Executor,
    classifier: ImageClassifier | None = None,
) -> Provider:
    kind = settings.resolved_provider
    if kind == "local":
        return LocalProvider(ocr, executor, classifier)
    if kind == "openrouter":
        config = ChatConfig(
            base_url=settings.openrouter_base_url,
            api_key=settings.openrouter_api_key,
            models=settings.model_chain,
            openrouter=True,
            zero_data_retention=settings.zero_data_retention,
            app_url=settings.public_url,
            timeout_s=settings.upstream_timeout_s,
            total_budget_s=settings.upstream_budget_s,
        )
    else:
        assert settings.openai_base_url is not None  # enforced by Settings
        config = ChatConfig(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            models=settings.model_chain,
            openrouter=False,
            timeout_s=settings.upstream_timeout_s,
            total_budget_s=settings.upstream_budget_s,
        )
    # Every HTTP call to the model server, retries included, lands in /metrics; so does every
    # change of a model's circuit breaker.
    return ChatCompletionsProvider(
        config,
        http,
        on_upstream=metrics.record_upstream_call,
        breakers=circuit_breakers(settings),
    )


def circuit_breakers(settings: Settings) -> CircuitBreakers | None:
    """One circuit breaker per model of the chain, per process (docs/engine.md); None when
    ``ALTTEXT_BREAKER_FAILURES=0`` turns them off."""
    if settings.breaker_failures == 0:
        return None
    breakers = CircuitBreakers(
        BreakerConfig(
            failures=settings.breaker_failures,
            cooldown_s=settings.breaker_cooldown_s,
            # A probe reports when its call ends, within the upstream budget; this only guards
            # against a probe that never does.
            probe_lease_s=settings.upstream_budget_s + settings.upstream_timeout_s,
        ),
        models=settings.model_chain,
        on_transition=metrics.record_circuit_transition,
    )
    for circuit in breakers.snapshot():
        metrics.record_circuit_state(circuit.model, circuit.state)
    return breakers


# Default hard cap on waiting CPU tasks, per thread (ALTTEXT_CPU_QUEUE); the wait bound
# (ALTTEXT_CPU_QUEUE_WAIT_S) is what normally limits the queue.
CPU_QUEUE_PER_WORKER = 1024


def cpu_pool(settings: Settings) -> CpuPool:
    # Pillow and onnxruntime release the GIL, so threads use every core for image work.
    workers = settings.workers or os.cpu_count() or 2
    queue = settings.cpu_queue if settings.cpu_queue is not None else CPU_QUEUE_PER_WORKER * workers
    return CpuPool(workers, queue, max_wait_s=settings.cpu_queue_wait_s)


def _fetch_client(settings: Settings, inflight: InflightBudget | None) -> httpx.AsyncClient:
    """The client of the URL fetcher (images, pages, webhooks): what it downloads for a
    request is counted on that request's memory lease as it arrives."""
    transport: httpx.AsyncBaseTransport = httpx.AsyncHTTPTransport(
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        # No proxies from the environment: the URL fetcher pins connections to checked IPs.
        trust_env=False,
    )
    if inflight is not None:
        transport = MeteredTransport(transport, max_declared=settings.max_image_bytes)
    return httpx.AsyncClient(
        timeout=httpx.Timeout(settings.upstream_timeout_s, connect=10.0),
        transport=transport,
        follow_redirects=False,
        trust_env=False,
    )


def provider_client(
    settings: Settings, *, verify: ssl.SSLContext | bool = True
) -> aiohttp.ClientSession:
    """The model server's own pool: keep-alive connections that URL fetches to many hosts
    cannot evict, kept open 30 s between calls so a quiet minute does not cost a new TLS
    handshake per request. aiohttp over HTTP/1.1, not httpx over HTTP/2: one call cost 0.3 ms
    of CPU against httpx's 1.6 ms over HTTP/2 (1.1 over HTTP/1.1), with a 90 kB image in the
    body (docs/decisions.md). Opened in the running loop; ``verify``: tests pass their own CA.
    No cookies are kept and no proxy is read from the environment."""
    connector = aiohttp.TCPConnector(
        limit=200, limit_per_host=0, keepalive_timeout=30.0, ssl=verify
    )
    return aiohttp.ClientSession(
        connector=connector,
        # The whole of one attempt is bounded by the provider (asyncio.timeout); this bounds
        # the connect alone, as the httpx client did.
        timeout=aiohttp.ClientTimeout(total=None, sock_connect=10.0),
        cookie_jar=aiohttp.DummyCookieJar(),
        trust_env=False,
        raise_for_status=False,
    )


@asynccontextmanager
async def open_runtime(
    settings: Settings, *, inflight: InflightBudget | None = None
) -> AsyncIterator[Runtime]:
    """``inflight``: the process's memory budget, on which URL downloads made for a request
    are counted (``alttext.inflight``); without it they are not counted."""
    skip_missing_sniffio()
    executor = cpu_pool(settings)
    http = _fetch_client(settings, inflight)
    upstream = provider_client(settings)
    provider: Provider | None = None
    try:
        ocr = await asyncio.to_thread(shared_ocr_reader)
        # Loaded at start-up rather than on a request.
        language_identifier = await asyncio.to_thread(shared_language_identifier)
        # Only the offline engine uses the classifier: no model load when a vision model is set.
        classifier = (
            await asyncio.to_thread(shared_image_classifier)
            if settings.resolved_provider == "local"
            else None
        )
        provider = build_provider(settings, upstream, ocr, executor, classifier)
        limits = image_limits(settings)
        engine = Engine(
            provider,
            executor=executor,
            language_identifier=language_identifier,
            image_limits=limits,
            ocr=ocr,
        )
        yield Runtime(
            settings=settings,
            http=http,
            executor=executor,
            ocr=ocr,
            provider=provider,
            engine=engine,
            image_limits=limits,
            fetch_limits=fetch_limits(settings),
            breakers=provider.breakers if isinstance(provider, ChatCompletionsProvider) else None,
        )
    finally:
        if provider is not None:
            await provider.aclose()
        await upstream.close()
        await http.aclose()
        executor.shutdown(wait=False, cancel_futures=True)
