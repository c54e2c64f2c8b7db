"""Periodic work of an API process: releasing expired reservations, recording key use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

log = logging.getLogger("alttext.background")
MAX_FIRST_DELAY_S = 300.0


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
    # The first run comes after a jittered part of the interval (at most five minutes), not at
    # start-up: processes started together do not all run a job at once, and start-up is not
    # slowed, while a process that restarts more often than a long interval still runs it.
    await asyncio.sleep(min(seconds, MAX_FIRST_DELAY_S) * random.uniform(0.5, 1.0))
    while True:
        try:
            await job()
        except asyncio.CancelledError:
            raise
        except Exception:  # a periodic job must survive a passing database error
            log.warning("periodic job failed", extra={"job": name}, exc_info=True)
        await asyncio.sleep(seconds)


@contextlib.asynccontextmanager
async def periodic(
    jobs: Sequence[tuple[str, float, Callable[[], Awaitable[object]]]],
) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(_every(s, name, job), name=name) for name, s, job in jobs]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
