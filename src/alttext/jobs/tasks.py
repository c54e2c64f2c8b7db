"""The jobs' queue tasks and periodic work, attached to the process's taskiq broker.

Two messages exist: ``crawl(job_id)`` and ``drive(account_id)``. Both are idempotent wake-ups
(the database decides what is left to do), so sending one twice is harmless and losing one
costs at most a sweep interval. ``JobsRunner`` is this process's side: it registers the task
functions (a worker, or an API process with the in-memory broker, runs them), counts its live
drivers per account, and on shutdown stops them so their items return to pending at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from typing import Any

from redis.exceptions import RedisError
from taskiq.exceptions import SendTaskError
from taskiq.kicker import AsyncKicker

from alttext import scheduler
from alttext.jobs import crawl_job, runner, sweep, webhook_delivery
from alttext.process import Services
from alttext.runtime import background
from alttext.scheduler import PeriodicTask

log = logging.getLogger("alttext.jobs")

CRAWL = "alttext.jobs.crawl"
DRIVE = "alttext.jobs.drive"
STOP_GRACE_S = 10.0  # for running items to hand back their leases on shutdown


async def _send(services: Services, task: str, arg: str, copies: int = 1) -> None:
    # A wake-up is best effort: if the queue is unreachable the sweep sends it again, so the
    # caller (an API request that already stored the job) does not fail for it.
    kicker: AsyncKicker[[str], Any] = AsyncKicker(task, services.broker, {})
    try:
        for _ in range(copies):
            await kicker.kiq(arg)
    except (RedisError, OSError, SendTaskError):  # taskiq wraps the broker's errors
        log.warning("could not send a job message; the sweep will", extra={"task": task})


async def wake_crawl(services: Services, job_id: str) -> None:
    await _send(services, CRAWL, job_id)


async def wake_account(services: Services, account_id: str) -> None:
    """Send as many drivers as the account may run items at once."""
    await _send(services, DRIVE, account_id, services.settings.job_concurrency_per_account)


class JobsRunner:
    def __init__(self, services: Services) -> None:
        self.services = services
        self.stopping = asyncio.Event()
        self._drivers: Counter[str] = Counter()
        self._tasks: set[asyncio.Task[Any]] = set()

    async def wake_crawl(self, job_id: str) -> None:
        await wake_crawl(self.services, job_id)

    async def wake_account(self, account_id: str) -> None:
        await wake_account(self.services, account_id)

    # Receiving.
    async def crawl(self, job_id: str) -> None:
        if self.stopping.is_set():
            return
        # The in-memory broker runs this in a copy of the sending request's context: make it
        # background work, which the CPU pool queues but never refuses (alttext.runtime).
        with self._tracked(), background():
            if await crawl_job.run_crawl(self.services, job_id):
                await self._wake_job_account(job_id)
                await runner.finish_if_done(self.services, job_id)

    async def drive(self, account_id: str) -> None:
        # More drivers of one account than its cap only queue up on the claim: skip them here.
        if self.stopping.is_set():
            return
        if self._drivers[account_id] >= self.services.settings.job_concurrency_per_account:
            return
        self._drivers[account_id] += 1
        try:
            with self._tracked(), background():
                await runner.drive(self.services, account_id, self.stopping)
        finally:
            self._drivers[account_id] -= 1
            if not self._drivers[account_id]:
                del self._drivers[account_id]

    async def _wake_job_account(self, job_id: str) -> None:
        from alttext.jobstore.models import Job

        async with self.services.sessions() as session:
            job = await session.get(Job, job_id)
        if job is not None:
            await self.wake_account(job.account_id)

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.add(task)
        try:
            yield
        finally:
            if task is not None:
                self._tasks.discard(task)

    async def sweep(self) -> None:
        await sweep.sweep(self.services, self.wake_crawl, self.wake_account)

    def periodic_tasks(self) -> list[PeriodicTask]:
        every = self.services.settings.job_sweep_s
        return [
            PeriodicTask("jobs-sweep", every, self.sweep),
            *webhook_delivery.periodic_tasks(self.services),
        ]

    async def stop(self) -> None:
        """Stop taking work; cancel running attempts (each gives its item back)."""
        self.stopping.set()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.wait(tasks, timeout=STOP_GRACE_S)


@contextlib.asynccontextmanager
async def running(services: Services, *, schedule: bool) -> AsyncIterator[JobsRunner]:
    """Register the jobs' tasks on the process's broker for the duration of the block; with
    ``schedule``, also run their periodic work here (the embedded process, or a worker: these
    tasks are cluster-wide, claimed once per tick across workers)."""
    jobs = JobsRunner(services)

    # Plain functions: taskiq renames what it registers, which a bound method does not allow.
    async def crawl_task(job_id: str) -> None:
        await jobs.crawl(job_id)

    async def drive_task(account_id: str) -> None:
        await jobs.drive(account_id)

    services.broker.register_task(crawl_task, task_name=CRAWL)
    services.broker.register_task(drive_task, task_name=DRIVE)
    async with contextlib.AsyncExitStack() as stack:
        if schedule:
            await stack.enter_async_context(
                scheduler.running(jobs.periodic_tasks(), services.claims)
            )
        try:
            yield jobs
        finally:
            await jobs.stop()
