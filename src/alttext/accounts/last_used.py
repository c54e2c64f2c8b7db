"""``last_used_at`` for API keys, written in batches off the request's hot path."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import ApiKey
from alttext.db import transaction, utcnow
from alttext.scheduler import PeriodicTask

log = logging.getLogger("alttext.keys")


class LastUsedRecorder:
    """Remembers the latest use per key in memory; ``flush`` writes them in one transaction."""

    def __init__(self) -> None:
        self._pending: dict[str, datetime] = {}

    def note(self, key_id: str) -> None:
        self._pending[key_id] = utcnow()

    async def flush(self, sessions: async_sessionmaker[AsyncSession]) -> int:
        if not self._pending:
            return 0
        pending, self._pending = self._pending, {}
        try:
            async with transaction(sessions) as session:
                for key_id, when in pending.items():
                    await session.execute(
                        update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when)
                    )
        except Exception:
            # Keep them for the next flush; newer uses win.
            for key_id, when in pending.items():
                self._pending.setdefault(key_id, when)
            log.warning("could not record key use; will retry", exc_info=True)
            return 0
        return len(pending)

    def periodic_task(self, sessions: async_sessionmaker[AsyncSession]) -> PeriodicTask:
        # The buffer lives in this process, so every process flushes its own.
        return PeriodicTask("key-last-used", 15.0, lambda: self.flush(sessions), per_process=True)
