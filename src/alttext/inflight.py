"""A memory budget for images being processed (``ALTTEXT_MAX_INFLIGHT_MB``).

Decoded images take far more memory than their files; capping the bytes in flight keeps a burst
of large uploads from exhausting the process. Requests wait briefly for room, then get a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from alttext.errors import ServiceUnavailable

# A compressed file expands several times when decoded; budget for that, not the file size.
EXPANSION = 4


class InflightBudget:
    def __init__(self, max_bytes: int, wait_s: float = 10.0) -> None:
        self.max_bytes = max_bytes
        self.wait_s = wait_s
        self.used = 0
        self._cond = asyncio.Condition()

    @asynccontextmanager
    async def hold(self, nbytes: int) -> AsyncIterator[None]:
        cost = min(self.max_bytes, nbytes * EXPANSION)
        try:
            async with asyncio.timeout(self.wait_s), self._cond:
                await self._cond.wait_for(lambda: self.used + cost <= self.max_bytes)
                self.used += cost
        except TimeoutError as exc:
            raise ServiceUnavailable(
                "The service is busy with other images; retry shortly.", retry_after=5
            ) from exc
        try:
            yield
        finally:
            async with self._cond:
                self.used -= cost
                self._cond.notify_all()
