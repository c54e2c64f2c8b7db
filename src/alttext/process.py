"""One way to build a process: the long-lived parts every surface needs, opened and closed once.

The app's lifespan, the CLI and the worker all call :func:`open_process`; nothing else creates
database engines, limiters, mailers or the describe runtime. Periodic work is declared by the
domain that owns it (``periodic_tasks`` functions) and run by :mod:`alttext.scheduler` when
the caller asks for it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass

from redis.exceptions import RedisError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker
from taskiq import AsyncBroker

from alttext import idempotency, models_registry, scheduler
from alttext.accounts.key_cache import KeyCache
from alttext.accounts.last_used import LastUsedRecorder
from alttext.billing import tasks as billing_tasks
from alttext.config import Settings
from alttext.db import create_engine, session_factory
from alttext.inflight import InflightBudget
from alttext.mail import Mailer, build_mailer
from alttext.privacy import retention
from alttext.queue import build_broker
from alttext.result_cache import ResultCache, build_result_cache
from alttext.runtime import Runtime, open_runtime
from alttext.scheduler import PeriodicTask
from alttext.usage.backends import build_limiter
from alttext.usage.limits import Limiter

log = logging.getLogger("alttext.process")


@dataclass
class Services:
    """The per-process container handed to routes, commands and workers."""

    settings: Settings
    db: AsyncEngine
    sessions: async_sessionmaker[AsyncSession]
    inflight: InflightBudget
    limiter: Limiter
    last_used: LastUsedRecorder
    key_cache: KeyCache  # checked API keys for a few seconds (alttext.accounts.key_cache)
    mailer: Mailer
    broker: AsyncBroker  # the queue; alttext.jobs registers its tasks on it
    claims: scheduler.TickClaims
    result_cache: ResultCache  # answers already written, per account (alttext.result_cache)
    _runtime: Runtime | None = None

    @property
    def runtime(self) -> Runtime:
        """The describe engine and its clients (built only where ``engine=True``)."""
        if self._runtime is None:
            raise RuntimeError("this process was built without the describe engine")
        return self._runtime


def periodic_tasks(services: Services) -> list[PeriodicTask]:
    """Every periodic task of the layers up to this one, as each owner declares it."""
    sessions, settings = services.sessions, services.settings
    return [
        services.last_used.periodic_task(sessions),
        *billing_tasks.periodic_tasks(sessions, settings),
        *idempotency.periodic_tasks(sessions),
        *retention.periodic_tasks(sessions, settings),
    ]


@contextlib.asynccontextmanager
async def open_process(
    settings: Settings,
    *,
    engine: bool = True,
    schedule: bool = False,
    worker: bool = False,
) -> AsyncIterator[Services]:
    """Build the process's parts; close them all, in reverse order, when the block ends.

    ``engine`` loads the describe runtime (OCR and language models: about a second), which
    commands that only touch the database skip. ``schedule`` runs the periodic tasks in the
    background (the jobs' own are run by ``alttext.jobs.tasks.running``). With Redis, the
    cluster-wide ones run on the workers' schedulers (``worker``), once per cluster; an API
    process then runs only its own per-process tasks. Without Redis this process is the
    cluster and runs them all.
    """
    models_registry.metadata()  # every table is known (erasure and export walk them all)
    db = create_engine(settings.database_url)
    sessions = session_factory(db)
    limiter = build_limiter(settings.redis_url)
    last_used = LastUsedRecorder()
    key_cache = KeyCache(settings.key_cache_ttl_s, redis_url=settings.redis_url)
    key_cache.watch(sessions)  # revocations drop cached keys at their commit
    inflight = InflightBudget(
        settings.max_inflight_mb * 1024 * 1024, wait_s=settings.inflight_wait_s
    )
    claims = scheduler.build_claims(settings.redis_url)
    broker = build_broker(settings.redis_url, max_async_tasks=settings.worker_concurrency)
    result_cache = build_result_cache(settings)
    try:
        async with contextlib.AsyncExitStack() as stack:
            key_cache.start()
            stack.push_async_callback(key_cache.aclose)
            runtime = (
                await stack.enter_async_context(open_runtime(settings, inflight=inflight))
                if engine
                else None
            )
            services = Services(
                settings=settings,
                db=db,
                sessions=sessions,
                inflight=inflight,
                limiter=limiter,
                last_used=last_used,
                key_cache=key_cache,
                mailer=build_mailer(settings),
                broker=broker,
                claims=claims,
                result_cache=result_cache,
                _runtime=runtime,
            )
            try:
                await broker.startup()
            except (RedisError, OSError):
                # Redis down at start: serve anyway (limits fall back to local); job messages
                # wait, the sweep re-sends them, and a worker retries before it listens.
                log.warning("queue unavailable at start-up", exc_info=True)
            stack.push_async_callback(broker.shutdown)
            if schedule:
                tasks = periodic_tasks(services)
                if settings.redis_url and not worker:
                    tasks = [task for task in tasks if task.per_process]
                await stack.enter_async_context(scheduler.running(tasks, claims))
            yield services
    finally:
        await last_used.flush(sessions)
        await claims.aclose()
        await result_cache.aclose()
        await limiter.aclose()
        await db.dispose()
