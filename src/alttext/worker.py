"""``alttext worker``: a queue worker for scaled-out deployments (``ALTTEXT_REDIS_URL`` set).

It reads the Redis stream of job messages (crawls and item drivers) and runs the cluster's
periodic work — the jobs sweep, webhook deliveries, retention, expired reservations — each
tick claimed once per cluster, so any number of workers may run. SIGTERM or SIGINT stop it
gracefully: no new message is taken, running items are handed back (pending again at once)
within a few seconds, and the process exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from redis.exceptions import RedisError
from taskiq import AsyncBroker
from taskiq.acks import AcknowledgeType
from taskiq.receiver import Receiver

from alttext.config import Settings
from alttext.jobs import tasks as jobs_tasks
from alttext.process import open_process

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
    async with (
        open_process(settings, schedule=True, worker=True) as services,
        jobs_tasks.running(services, schedule=True) as jobs,
    ):
        services.broker.is_worker_process = True
        stopped = asyncio.create_task(stop.wait())
        delay = 0.5
        while not stop.is_set():
            await _until_queue_ready(services.broker, stop)
            if stop.is_set():
                break
            finish = asyncio.Event()
            listening = asyncio.create_task(_receiver(services.broker, settings).listen(finish))
            log.info("worker listening", extra={"concurrency": settings.worker_concurrency})
            await asyncio.wait({listening, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finish.set()
            if stop.is_set():
                listening.cancel()
                with contextlib.suppress(asyncio.CancelledError, RedisError, OSError):
                    await listening
                break
            # The receiver ended on its own: Redis went away under it. Running items carry on
            # (their leases live in the database); listen again once Redis answers.
            failure = listening.exception() if not listening.cancelled() else None
            log.warning("queue connection lost; reconnecting", exc_info=failure)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)
            delay = min(delay * 2, 30.0)
        await jobs.stop()  # hand running items back
        stopped.cancel()
        log.info("worker stopped")


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
