"""The scheduler of periodic work that the domains declare (``periodic_tasks`` in each).

Each task runs at its interval in the background of a process. A cluster-wide task runs once
per cluster, not once per process: with a shared backend (Redis) a process first claims the
tick with ``SET NX PX``, and only the process that wins runs it. Without one (the embedded
default: one process, SQLite) every claim succeeds. Per-process tasks (flushing a buffer that
lives in this process) always run. Every task is safe to run twice: the claim saves work and
load, it is not what keeps data right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from redis.asyncio import Redis

log = logging.getLogger("alttext.scheduler")
MAX_FIRST_DELAY_S = 300.0


@dataclass(frozen=True)
class PeriodicTask:
    name: str
    every_s: float
    run: Callable[[], Awaitable[object]]
    per_process: bool = False  # True: the task's state lives in this process


class TickClaims(Protocol):
    async def claim(self, name: str, ttl_s: float) -> bool: ...

    async def aclose(self) -> None: ...


class LocalClaims:
    """One process is the whole cluster: every tick is ours."""

    async def claim(self, name: str, ttl_s: float) -> bool:
        return True

    async def aclose(self) -> None:
        return None


class RedisClaims:
    """Claim a tick for the cluster: the first process to set the key runs the task."""

    def __init__(self, url: str, namespace: str = "alttext") -> None:
        # Imported here: the tables that name a PeriodicTask (idempotency) are loaded by
        # command-line writes too, which need no Redis client.
        from redis.asyncio import Redis

        self._redis: Redis = Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
        self._prefix = f"{namespace}:tick:"
        self._owner = secrets.token_hex(8)

    async def claim(self, name: str, ttl_s: float) -> bool:
        from redis.exceptions import RedisError

        try:
            won = await self._redis.set(
                self._prefix + name, self._owner, nx=True, px=max(1, int(ttl_s * 1000))
            )
        except (RedisError, OSError):
            # Redis down: run here rather than not at all (every task is safe to repeat).
            log.warning("tick claim failed; running locally", extra={"job": name})
            return True
        return bool(won)

    async def aclose(self) -> None:
        await self._redis.aclose()


def build_claims(redis_url: str | None) -> TickClaims:
    return RedisClaims(redis_url) if redis_url else LocalClaims()


async def _every(task: PeriodicTask, claims: TickClaims) -> None:
    # The first run comes after a jittered part of the interval (at most five minutes), not at
    # start-up: processes started together do not all run a job at once, and start-up is not
    # slowed, while a process that restarts more often than a long interval still runs it.
    await asyncio.sleep(min(task.every_s, MAX_FIRST_DELAY_S) * random.uniform(0.5, 1.0))
    while True:
        try:
            # The claim lives a little less than the interval, so the next tick is free again.
            if task.per_process or await claims.claim(task.name, task.every_s * 0.9):
                await task.run()
        except asyncio.CancelledError:
            raise
        except Exception:  # a periodic task must survive a passing database error
            log.warning("periodic job failed", extra={"job": task.name}, exc_info=True)
        await asyncio.sleep(task.every_s)


@contextlib.asynccontextmanager
async def running(tasks: Sequence[PeriodicTask], claims: TickClaims) -> AsyncIterator[None]:
    """Run ``tasks`` in the background for the duration of the block."""
    handles = [asyncio.create_task(_every(t, claims), name=t.name) for t in tasks]
    try:
        yield
    finally:
        for handle in handles:
            handle.cancel()
        for handle in handles:
            with contextlib.suppress(asyncio.CancelledError):
                await handle
