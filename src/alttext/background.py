"""Periodic work of an API process: releasing expired reservations, recording key use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

log = logging.getLogger("alttext.background")


async def _every(seconds: float, name: str, job: Callable[[], Awaitable[object]]) -> None:
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
