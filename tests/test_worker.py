"""``alttext worker``: needs Redis, stops gracefully, and owns the cluster's periodic work."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from alttext import scheduler
from alttext.accounts.models import Account
from alttext.accounts.service import create_account
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import transaction
from alttext.jobs import service as jobs_service
from alttext.jobs import tasks as jobs_tasks
from alttext.jobs.schemas import JobCreate
from alttext.jobstore.models import Job, JobItem
from alttext.process import open_process
from alttext.worker import run_worker
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import Slow
from tests.jobs.helpers import FAST_JOBS, png, wait_for

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


def _worker_process(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "alttext", "worker"],
            env={**os.environ, **env},
            stdout=sink,
            stderr=sink,
        )


async def _stopped(proc: subprocess.Popen[bytes], log: Path, timeout: float = 20) -> int:
    """SIGTERM ``proc`` and wait for its exit status; its log tail if it does not exit."""
    proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(proc.wait, timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGABRT)  # PYTHONFAULTHANDLER: every thread's stack to the log
        await asyncio.to_thread(proc.wait, 10)
        tail = log.read_text(errors="replace")[-6000:]
        raise AssertionError(f"the worker did not stop within {timeout:g} s:\n{tail}") from None


@pytest.mark.skipif(REDIS_URL is None, reason="needs ALTTEXT_TEST_REDIS_URL (CI sets it)")
@pytest.mark.timeout(240)
async def test_sigterm_to_a_worker_process_hands_its_item_back_and_it_is_charged_once(
    database_url: str, fake_openrouter: Any, tmp_path: Path
) -> None:
    """``alttext worker`` as an OS process, SIGTERMed while an item waits on the model: it
    exits 0 within seconds, the item is pending again with its credit released (not lost, not
    charged), and the next worker finishes it, charging exactly one credit."""
    assert REDIS_URL is not None
    settings = make_settings(database_url, redis_url=REDIS_URL, **FAST_JOBS)
    # A worker stops in about 5 s. On SQLite its shutdown can wait out the 30 s busy timeout:
    # seen once in a dozen loaded runs, the scheduler's cancelled webhook delivery waiting on
    # a connection close queued behind a statement blocked on the write lock.
    stop_s = 45.0 if database_url.startswith("sqlite") else 20.0
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_REDIS_URL": REDIS_URL,
        "ALTTEXT_SECRET_KEY": settings.secret_key,
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake_openrouter.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "ALTTEXT_MODELS": "google/gemini-2.5-flash-lite",
        "ALTTEXT_ALLOW_PRIVATE_URLS": "true",
        "ALTTEXT_JOB_LEASE_S": "3",
        "ALTTEXT_JOB_SWEEP_S": "0.2",
        "ALTTEXT_CACHE_TTL_S": "0",
        "ALTTEXT_LOG_LEVEL": "INFO",  # into tmp_path: shown if a worker does not stop
        "PYTHONFAULTHANDLER": "1",
    }
    fake_openrouter.script(Slow(60))  # the first attempt waits on the model until SIGTERM
    with running_image_host() as host:
        host.image("/a.png", png(3))
        async with open_process(settings, engine=False) as services:
            async with transaction(services.sessions) as session:
                account = await create_account(session, "sigterm-worker@example.com")
                await grant_starting_credits(session, account, 5)
            job = await jobs_service.create_job(
                services.sessions,
                settings,
                account_id=account.id,
                key_id=None,
                spec=JobCreate.model_validate({"items": [{"image_url": host.url("/a.png")}]}),
            )

            async def item() -> JobItem:
                async with services.sessions() as session:
                    return (
                        await session.execute(select(JobItem).where(JobItem.job_id == job.id))
                    ).scalar_one()

            async def reservation(request_id: str | None) -> str | None:
                async with services.sessions() as session:
                    return await session.scalar(
                        select(CreditReservation.state).where(CreditReservation.id == request_id)
                    )

            first = _worker_process(env, tmp_path / "first.log")
            try:
                await jobs_tasks.wake_account(services, account.id)

                async def in_model_call() -> bool:
                    current = await item()
                    return (
                        current.status == "running"
                        and len(fake_openrouter.chat_requests) == 1
                        and await reservation(current.request_id) == "held"
                    )

                await wait_for(in_model_call, timeout=60)
                attempt = (await item()).request_id
                assert await _stopped(first, tmp_path / "first.log", stop_s) == 0
            finally:
                if first.poll() is None:
                    first.kill()
                    first.wait()
            handed_back = await item()
            assert handed_back.status == "pending"
            assert handed_back.lease_until is None
            assert await reservation(attempt) == "released"

            second = _worker_process(env, tmp_path / "second.log")  # the model answers at once
            try:

                async def succeeded() -> bool:
                    return (await item()).status == "succeeded"

                await wait_for(succeeded, timeout=60)
            finally:
                assert await _stopped(second, tmp_path / "second.log", stop_s) == 0
            async with services.sessions() as session:
                done = await item()
                states = (
                    await session.scalars(
                        select(CreditReservation.state).where(
                            CreditReservation.account_id == account.id
                        )
                    )
                ).all()
                ledger = await session.scalar(
                    select(func.sum(CreditEntry.credits)).where(
                        CreditEntry.account_id == account.id
                    )
                )
                balance = await session.scalar(
                    select(Account.credits_balance).where(Account.id == account.id)
                )
                spent = await session.scalar(select(Job.credits_spent).where(Job.id == job.id))
    assert done.credits == 1
    assert sorted(states) == ["released", "settled"]
    assert ledger == balance == 4
    assert spent == 1
