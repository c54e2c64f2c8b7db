"""``alttext worker``: a queue worker for scaled-out deployments (``ALTTEXT_REDIS_URL`` set).

It reads the Redis stream of job messages (crawls and item drivers) and runs the cluster's
periodic work — the jobs sweep, webhook deliveries, retention, expired reservations — each
tick claimed once per cluster, so any number of workers may run. SIGTERM or SIGINT stop it
gracefully: no new message is taken, running items are handed back (pending again at once)
within a few seconds, and the process exits 0.

With ``ALTTEXT_WORKER_METRICS_PORT`` set it also answers ``GET /metrics`` on that port (bound to
``ALTTEXT_WORKER_METRICS_HOST``), the same exposition behind the same token as the API's route
(``alttext.metrics.scrape``), so the series a worker records (upstream calls and credits of job
items, webhook deliveries, its circuit breakers) are scraped. The listener is the standard
library's WSGI server in a thread (one thread per scrape); a scrape runs on the worker's event
loop, where the database is. Nothing else is served.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import socket
import threading
from collections.abc import AsyncIterator, Iterable
from socketserver import ThreadingMixIn
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

from redis.exceptions import RedisError
from taskiq import AsyncBroker
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from alttext import metrics
from alttext.config import Settings
from alttext.errors import PROBLEM_JSON, AppError, NotFound, Unauthorized, problem_fields
from alttext.jobs import tasks as jobs_tasks
from alttext.jobstore.stats import JobCounts, job_counts
from alttext.process import Services, open_process

log = logging.getLogger("alttext.worker")


async def _until_queue_ready(broker: AsyncBroker, stop: asyncio.Event) -> None:
    """Declare the consumer group, retrying while Redis is down (open_process logged it)."""
    delay = 0.5
    while not stop.is_set():
        try:
            await broker.startup()
            return
        except (RedisError, OSError):
            log.warning("queue unavailable; retrying", extra={"retry_in_s": delay})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)


async def run_worker(settings: Settings, stop: asyncio.Event | None = None) -> None:
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        async with (
            open_process(settings, schedule=True, worker=True) as services,
            jobs_tasks.running(services, schedule=True) as jobs,
            serving_metrics(settings, services),
        ):
            services.broker.is_worker_process = True
            stopped = asyncio.create_task(stop.wait())
            delay = 0.5
            while not stop.is_set():
                await _until_queue_ready(services.broker, stop)
                if stop.is_set():
                    break
                finish = asyncio.Event()
                receiver = _receiver(services.broker, settings)
                listening = asyncio.create_task(receiver.listen(finish))
                log.info("worker listening", extra={"concurrency": settings.worker_concurrency})
                await asyncio.wait({listening, stopped}, return_when=asyncio.FIRST_COMPLETED)
                finish.set()
                if stop.is_set():
                    listening.cancel()
                    with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                        await listening
                    break
                # The receiver ended on its own: Redis went away under it. Running items carry
                # on (their leases live in the database); listen again once Redis answers.
                failure = listening.exception() if not listening.cancelled() else None
                log.warning("queue connection lost; reconnecting", exc_info=failure)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 30.0)
            await jobs.stop()  # hand running items back
            stopped.cancel()
            log.info("worker stopped")
    finally:
        metrics.process_exited()  # its live gauges leave the host's sums (multiprocess mode)


def _receiver(broker: AsyncBroker, settings: Settings) -> Receiver:
    return Receiver(
        broker,
        max_async_tasks=settings.worker_concurrency,
        # Messages are wake-ups and the database holds the work (alttext.queue), so a message
        # is done once received; a worker that dies loses nothing but a wake-up.
        ack_type=AcknowledgeType.WHEN_RECEIVED,
        run_startup=False,  # open_process started the broker
        propagate_exceptions=False,
    )


# -- GET /metrics ------------------------------------------------------------------------------

# How long one scrape may take on the event loop (database counts, then the exposition).
SCRAPE_TIMEOUT_S = 10.0
# How long a scraper's connection may sit idle (a request not sent, an answer not read).
CONNECTION_TIMEOUT_S = 10.0


async def _job_counts(services: Services) -> JobCounts:
    async with services.sessions() as session:
        return await job_counts(session)


class _MetricsServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a stuck scraper never holds the process at exit


class _MetricsServer6(_MetricsServer):
    address_family = socket.AF_INET6


class _QuietHandler(WSGIRequestHandler):
    timeout = CONNECTION_TIMEOUT_S

    def log_message(self, format: str, *args: object) -> None:
        """No access log: a scrape every few seconds would drown the worker's own lines."""


def _answer(
    start_response: StartResponse,
    status: int,
    problem: AppError,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    """A problem document, as the API answers (without a request id: none is assigned here)."""
    body = json.dumps(problem_fields(problem, None)).encode()
    reason = {401: "Unauthorized", 404: "Not Found"}[status]
    start_response(
        f"{status} {reason}",
        [("Content-Type", PROBLEM_JSON), ("Content-Length", str(len(body))), *(headers or [])],
    )
    return [body]


def metrics_app(
    settings: Settings, services: Services, loop: asyncio.AbstractEventLoop
) -> WSGIApplication:
    """The listener's WSGI application: ``GET /metrics`` by :func:`alttext.metrics.scrape` on
    ``loop`` (the worker's), nothing else."""

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            return _answer(start_response, 404, NotFound("Only /metrics is served here."))
        if environ.get("REQUEST_METHOD") != "GET":  # as the API's route
            start_response("405 Method Not Allowed", [("Allow", "GET"), ("Content-Length", "0")])
            return []
        future = asyncio.run_coroutine_threadsafe(
            metrics.scrape(
                settings.metrics_token,
                environ.get("HTTP_AUTHORIZATION"),
                lambda: _job_counts(services),
            ),
            loop,
        )
        try:
            answer = future.result(SCRAPE_TIMEOUT_S)
        except Exception as exc:  # a timeout, or the loop shutting down
            future.cancel()
            log.warning("metrics scrape failed", extra={"error_type": type(exc).__name__})
            start_response(
                "503 Service Unavailable", [("Retry-After", "5"), ("Content-Length", "0")]
            )
            return []
        if answer.status == 404:
            return _answer(start_response, 404, NotFound(metrics.OFF_DETAIL))
        if answer.status != 200:
            denied = Unauthorized(metrics.DENIED_DETAIL)
            return _answer(start_response, 401, denied, [("WWW-Authenticate", "Bearer")])
        start_response(
            "200 OK",
            [
                ("Content-Type", metrics.CONTENT_TYPE),
                ("Content-Length", str(len(answer.body))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [answer.body]

    return app


@contextlib.asynccontextmanager
async def serving_metrics(settings: Settings, services: Services) -> AsyncIterator[None]:
    """The metrics listener for the duration of the block; nothing when
    ``ALTTEXT_WORKER_METRICS_PORT`` is 0 (the default). A port that cannot be bound stops the
    worker at start-up, like the API's."""
    if not settings.worker_metrics_port:
        yield
        return
    host, port = settings.worker_metrics_host, settings.worker_metrics_port
    server_class = _MetricsServer6 if ":" in host else _MetricsServer
    server = make_server(
        host.strip("[]"),
        port,
        metrics_app(settings, services, asyncio.get_running_loop()),
        server_class=server_class,
        handler_class=_QuietHandler,
    )
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.2}, name="metrics", daemon=True
    )
    thread.start()
    if not settings.metrics_token:
        log.warning("worker metrics: ALTTEXT_METRICS_TOKEN is unset, so /metrics answers 404")
    log.info(
        "worker metrics listening",
        extra={"host": host, "port": server.server_port, "token": bool(settings.metrics_token)},
    )
    try:
        yield
    finally:
        await asyncio.to_thread(server.shutdown)
        server.server_close()
