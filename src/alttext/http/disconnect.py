"""Stop work when the client goes away, so a generation nobody receives is never charged.

Uvicorn does not cancel a request whose client disconnected; it only reports
``http.disconnect`` on the receive channel. Once the body has been read, the only message that
can still arrive is that one, so a watcher waits for it and cancels the work, which releases
the reserved credit (generation/service.py) and frees an idempotency key.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from alttext.errors import ClientDisconnected

__all__ = ["ClientDisconnected", "unless_disconnected"]

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Await ``work``; cancel it if the client disconnects first. Call after reading the body."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                task.cancel()
                return

    watcher = asyncio.create_task(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():
            raise ClientDisconnected("The client disconnected; nothing was charged.") from None
        raise
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher
        # Let the loop run the cancelled receive's last callbacks now, so nothing of the
        # request (its body) is still referenced from the loop's queue when we answer.
        await asyncio.sleep(0)
