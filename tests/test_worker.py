"""``alttext worker``: needs Redis, stops gracefully, and owns the cluster's periodic work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from sqlalchemy import select

from alttext import scheduler
from alttext.accounts.service import create_account
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditReservation
from alttext.db import transaction
from alttext.jobs import service as jobs_service
from alttext.jobs import tasks as jobs_tasks
from alttext.jobs.schemas import JobCreate
from alttext.jobstore.models import JobItem
from alttext.process import open_process
from alttext.worker import run_worker
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.fixtures import running_image_host
from tests.jobs.helpers import FAST_JOBS, wait_for

pytestmark = pytest.mark.anyio


def test_a_worker_without_redis_says_what_it_needs() -> None:
    env = {k: v for k, v in os.environ.items() if k != "ALTTEXT_REDIS_URL"}
    done = subprocess.run(
        [sys.executable, "-m", "alttext", "worker"],
        env={**env, "ALTTEXT_ENV": "test"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "ALTTEXT_REDIS_URL" in done.stderr


async def _scheduled(
    monkeypatch: pytest.MonkeyPatch, database_url: str, *, redis: str | None, worker: bool
) -> set[str]:
    seen: set[str] = set()

    @contextlib.asynccontextmanager
    async def capture(tasks: Sequence[scheduler.PeriodicTask], claims: Any) -> AsyncIterator[None]:
        seen.update(task.name for task in tasks)
        yield

    monkeypatch.setattr(scheduler, "running", capture)
    settings = make_settings(database_url, redis_url=redis)
    async with (
        open_process(settings, engine=False, schedule=True, worker=worker) as services,
        jobs_tasks.running(services, schedule=worker or redis is None),
    ):
        pass
    return seen


async def test_the_cluster_tasks_run_on_workers_when_redis_is_set(
    monkeypatch: pytest.MonkeyPatch, database_url: str
) -> None:
    alone = await _scheduled(monkeypatch, database_url, redis=None, worker=False)
    assert {"jobs-sweep", "release-expired", "retention-purge", "key-last-used"} <= alone
    # With Redis the API process keeps only its own buffer flush; the worker runs the rest.
    redis = REDIS_URL or "redis://127.0.0.1:1/0"
    api = await _scheduled(monkeypatch, database_url, redis=redis, worker=False)
    assert api == {"key-last-used"}
    worker = await _scheduled(monkeypatch, database_url, redis=redis, worker=True)
    assert worker == alone


@pytest.mark.skipif(REDIS_URL is None, reason="needs ALTTEXT_TEST_REDIS_URL (CI sets it)")
async def test_stopping_a_worker_hands_its_running_items_back(database_url: str) -> None:
    settings = make_settings(
        database_url, redis_url=REDIS_URL, job_concurrency_per_account=1, **FAST_JOBS
    )
    with running_image_host() as host:
        host.drip("/slow.png", interval_s=0.5)  # never finishes while the test waits
        async with open_process(settings, engine=False) as services:
            async with transaction(services.sessions) as session:
                account = await create_account(session, "stop@example.com")
                await grant_starting_credits(session, account, 5)
            job = await jobs_service.create_job(
                services.sessions,
                settings,
                account_id=account.id,
                key_id=None,
                spec=JobCreate.model_validate({"items": [{"image_url": host.url("/slow.png")}]}),
            )
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(settings, stop))
            await jobs_tasks.wake_account(services, account.id)

            async def running() -> bool:
                async with services.sessions() as session:
                    status = await session.scalar(
                        select(JobItem.status).where(JobItem.job_id == job.id)
                    )
                return status == "running"

            await wait_for(running, timeout=30)
            stop.set()  # what SIGTERM does
            await asyncio.wait_for(worker, timeout=15)
            async with services.sessions() as session:
                item = (
                    await session.execute(select(JobItem).where(JobItem.job_id == job.id))
                ).scalar_one()
                assert item.status == "pending"
                assert item.lease_until is None
                held = await session.scalar(
                    select(CreditReservation.state).where(CreditReservation.id == item.request_id)
                )
            # The attempt was cancelled before or after reserving: never left holding a credit.
            assert held in (None, "released")
