"""A 2,000-image job across real processes, with a process SIGKILLed in the middle.

* Scaled out: one ``alttext serve`` and two ``alttext worker`` processes on the real Redis
  (ALTTEXT_TEST_REDIS_URL); one worker is killed mid-job.
* Embedded: one ``alttext serve`` with the in-memory broker, killed mid-job and started again.

Either way every item must end ``succeeded``, each charged exactly once: one settled
reservation per item, every other reservation released, the job's credits, the balance and
the ledger's sum agreeing.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from alttext.billing.ledger import ITEM_USAGE_PREFIX
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import create_engine, session_factory
from alttext.jobstore.models import JobItem
from tests.conftest import PG_URL, REDIS_URL, _truncate_postgres
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import FakeOpenRouter
from tests.jobs.helpers import png
from tests.processes import free_port, logged, service_process

ITEMS = 2000
CREDITS = 5000


def _env(database_url: str, fake: FakeOpenRouter, **extra: str) -> dict[str, str]:
    return {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_SECRET_KEY": "test-secret-key-that-is-long-enough-0123456789",
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake.base_url,
        "ALTTEXT_MODELS": "google/gemini-2.5-flash-lite",
        "ALTTEXT_ALLOW_PRIVATE_URLS": "true",
        "ALTTEXT_JOB_LEASE_S": "3",
        "ALTTEXT_JOB_SWEEP_S": "0.5",
        "ALTTEXT_JOB_CONCURRENCY_PER_ACCOUNT": "8",
        "ALTTEXT_RESERVATION_SWEEP_S": "1",
        "ALTTEXT_RATE_LIMIT_PER_MINUTE": "100000",
        "ALTTEXT_LOG_LEVEL": "WARNING",
        "ALTTEXT_WORKERS": "1",
        # Every item is the same picture: without this the result cache answers all but one.
        "ALTTEXT_CACHE_TTL_S": "0",
        **extra,
    }


async def _one_database(request: pytest.FixtureRequest, tmp_path: Any, *, postgres: bool) -> str:
    if postgres:
        url = str(request.getfixturevalue("postgres_migrated"))
        await _truncate_postgres(url)
        return url
    path = tmp_path / "jobs.db"
    shutil.copy(request.getfixturevalue("sqlite_template"), path)
    return f"sqlite+aiosqlite:///{path}"


def _cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "alttext", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


def _api_key(env: dict[str, str]) -> str:
    _cli(env, "accounts", "create", "bulk@example.com", "--credits", str(CREDITS))
    return _cli(env, "keys", "create", "bulk@example.com").strip().splitlines()[-1]


@contextmanager
def _worker(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("ab") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alttext", "worker"],
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=30)


def _serve_images(host: FakeImageHost) -> list[dict[str, str]]:
    body = png(7)
    items = []
    for i in range(ITEMS):
        host.image(f"/p/{i}.png", body)
        items.append({"id": f"sku-{i}", "image_url": host.url(f"/p/{i}.png")})
    return items


def _job(base: str, key: str) -> dict[str, Any]:
    return dict(
        httpx.get(f"{base}/v1/jobs", headers={"Authorization": f"Bearer {key}"}, timeout=10).json()[
            "data"
        ][0]
    )


def _wait(base: str, key: str, job_id: str, done: Any, timeout: float = 300) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    job: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            job = httpx.get(
                f"{base}/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"}, timeout=10
            ).json()
        except httpx.HTTPError:
            job = {}
        if job and done(job):
            return job
        if job and int(time.monotonic()) % 5 == 0:
            print(round(time.monotonic()), job.get("status"), job.get("counts"))  # shown on failure
        time.sleep(0.25)
    raise AssertionError(f"timed out; last seen {job}")


def _create(base: str, key: str, items: list[dict[str, str]]) -> str:
    response = httpx.post(
        f"{base}/v1/jobs",
        headers={"Authorization": f"Bearer {key}"},
        json={"items": items},
        timeout=60,
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def _money(database_url: str, job_id: str) -> dict[str, Any]:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with sessions() as session:
            states = dict(
                (
                    await session.execute(
                        select(CreditReservation.state, func.count()).group_by(
                            CreditReservation.state
                        )
                    )
                ).all()
            )
            ledger = await session.scalar(select(func.sum(CreditEntry.credits)))
            item_states = dict(
                (
                    await session.execute(
                        select(JobItem.status, func.count())
                        .where(JobItem.job_id == job_id)
                        .group_by(JobItem.status)
                    )
                ).all()
            )
            charged = await session.scalar(
                select(func.sum(JobItem.credits)).where(JobItem.job_id == job_id)
            )
            attempts = await session.scalar(
                select(func.sum(JobItem.attempts)).where(JobItem.job_id == job_id)
            )
            problems = list(
                (
                    await session.execute(
                        select(JobItem.problem).where(
                            JobItem.job_id == job_id, JobItem.status == "failed"
                        )
                    )
                ).scalars()
            )
            item_charges = await session.scalar(
                select(func.count())
                .select_from(CreditEntry)
                .where(CreditEntry.reference.startswith(ITEM_USAGE_PREFIX))
            )
    finally:
        await engine.dispose()
    return {
        "settled": int(states.get("settled", 0)),
        "held": int(states.get("held", 0)),
        "released": int(states.get("released", 0)),
        "ledger": int(ledger or 0),
        "succeeded": int(item_states.get("succeeded", 0)),
        "charged": int(charged or 0),
        "attempts": int(attempts or 0),
        "item_charges": int(item_charges or 0),
        "problems": problems,  # of failed items, shown when an assertion fails
    }


def _assert_charged_once(
    money: dict[str, Any], job: dict[str, Any], balance: int, logs: str
) -> None:
    assert money["succeeded"] == ITEMS, f"{money['problems']}\n{logs}"
    assert money["charged"] == ITEMS
    assert job["credits_spent"] == ITEMS
    # One settled reservation per item; every other attempt's reservation was given back.
    assert money["settled"] == ITEMS
    assert money["held"] == 0
    assert money["ledger"] == CREDITS - ITEMS == balance
    # The ledger itself holds one charge per item (its reference is the item's).
    assert money["item_charges"] == ITEMS


def _balance(base: str, key: str) -> int:
    account = httpx.get(f"{base}/v1/account", headers={"Authorization": f"Bearer {key}"})
    return int(account.json()["credits_remaining"])


async def _settled(database_url: str, job_id: str, base: str, key: str) -> dict[str, Any]:
    """The money once the sweeps have released every dead attempt's reservation."""
    deadline = time.monotonic() + 60
    while True:
        money = await _money(database_url, job_id)
        if money["held"] == 0 or time.monotonic() > deadline:
            return money
        time.sleep(0.5)


@pytest.mark.anyio
@pytest.mark.timeout(600)
@pytest.mark.skipif(REDIS_URL is None, reason="needs ALTTEXT_TEST_REDIS_URL (CI sets it)")
async def test_two_workers_on_redis_one_killed_mid_job(
    request: pytest.FixtureRequest, tmp_path: Any, fake_openrouter: FakeOpenRouter
) -> None:
    # A scaled-out deployment's database: PostgreSQL when the run has one (CI), else SQLite.
    # Once, not per backend: 2,000 items across processes take a while.
    assert REDIS_URL is not None
    database_url = await _one_database(request, tmp_path, postgres=PG_URL is not None)
    env = _env(database_url, fake_openrouter, ALTTEXT_REDIS_URL=REDIS_URL)
    key = _api_key(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    logs = [tmp_path / "serve.log", tmp_path / "first.log", tmp_path / "second.log"]
    with running_image_host() as host, service_process(env, port, log=logs[0]):
        items = _serve_images(host)
        with _worker(env, logs[1]) as first, _worker(env, logs[2]) as second:
            job_id = _create(base, key, items)
            _wait(base, key, job_id, lambda j: j["counts"]["succeeded"] >= ITEMS // 4)
            first.send_signal(signal.SIGKILL)
            first.wait(timeout=10)
            job = _wait(base, key, job_id, lambda j: j["status"] == "completed")
            assert second.poll() is None
            money = await _settled(database_url, job_id, base, key)
            _assert_charged_once(money, job, _balance(base, key), logged(*logs))
            # The killed worker's leased items were taken up again by the other: more attempts
            # than items (every item succeeded once, so each extra attempt is a takeover).
            assert money["attempts"] > ITEMS, money
            assert len(host.requests) >= ITEMS


@pytest.mark.anyio
@pytest.mark.timeout(600)
async def test_embedded_broker_survives_the_api_process_killed_mid_job(
    request: pytest.FixtureRequest, tmp_path: Any, fake_openrouter: FakeOpenRouter
) -> None:
    # The embedded default is SQLite.
    database_url = await _one_database(request, tmp_path, postgres=False)
    env = _env(database_url, fake_openrouter)
    key = _api_key(env)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running_image_host() as host:
        items = _serve_images(host)
        logs = [tmp_path / "serve.log", tmp_path / "restarted.log"]
        with service_process(env, port, log=logs[0]) as api:
            job_id = _create(base, key, items)
            seen = _wait(base, key, job_id, lambda j: j["counts"]["succeeded"] >= ITEMS // 4)
            api.send_signal(signal.SIGKILL)
            api.wait(timeout=10)
        assert seen["status"] == "running", seen
        # Every attempt fetches its image once: fewer fetches than items means some items had
        # not even started when the process died, so the restarted one finished the job.
        before = len(host.requests)
        assert before < ITEMS, "the job was already done before the kill"
        with service_process(env, port, log=logs[1]):
            job = _wait(base, key, job_id, lambda j: j["status"] == "completed")
            assert len(host.requests) >= ITEMS > before
            money = await _settled(database_url, job_id, base, key)
            _assert_charged_once(money, job, _balance(base, key), logged(*logs))
