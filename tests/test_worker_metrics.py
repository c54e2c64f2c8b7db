"""``alttext worker``'s metrics listener (``ALTTEXT_WORKER_METRICS_PORT``): the API's
``GET /metrics`` answers and token, the series a worker records, and live gauges that leave
with a process that stops cleanly (``metrics.process_exited``)."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from alttext import metrics
from alttext.accounts.service import create_account
from alttext.billing.ledger import grant_starting_credits
from alttext.db import transaction
from alttext.jobs import service as jobs_service
from alttext.jobs import tasks as jobs_tasks
from alttext.jobs.schemas import JobCreate
from alttext.jobstore.models import JobItem
from alttext.process import open_process
from alttext.worker import run_worker, serving_metrics
from tests.conftest import REDIS_URL, make_settings
from tests.fakes.fixtures import running_image_host
from tests.jobs.helpers import FAST_JOBS, png, wait_for
from tests.test_metrics import ROOT, families, sample

pytestmark = pytest.mark.anyio

TOKEN = "worker-metrics-token-0123456789"
GEMINI = "google/gemini-2.5-flash-lite"
needs_redis = pytest.mark.skipif(
    REDIS_URL is None, reason="needs ALTTEXT_TEST_REDIS_URL (CI sets it)"
)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _get(port: int, path: str = "/metrics", **headers: str) -> httpx.Response:
    async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
        return await client.get(f"http://127.0.0.1:{port}{path}", headers=headers)


async def _listening(port: int) -> bool:
    try:
        await _get(port)
    except httpx.TransportError:
        return False
    return True


async def test_the_listener_answers_like_the_api(database_url: str) -> None:
    """Same statuses, problem documents and exposition as the API's route; nothing but
    ``GET /metrics``; off (no listener) by default."""
    assert make_settings(database_url).worker_metrics_port == 0
    port = free_port()
    settings = make_settings(database_url, metrics_token=TOKEN, worker_metrics_port=port)
    async with open_process(settings, engine=False) as services:
        async with serving_metrics(settings, services):
            bare = await _get(port)
            assert bare.status_code == 401
            assert bare.headers["www-authenticate"] == "Bearer"
            assert bare.headers["content-type"] == "application/problem+json"
            assert bare.json()["code"] == "unauthorized"
            wrong = await _get(port, authorization=f"Bearer {TOKEN}x")
            assert wrong.status_code == 401
            assert (await _get(port, authorization=f"Basic {TOKEN}")).status_code == 401

            ok = await _get(port, authorization=f"Bearer {TOKEN}")
            assert ok.status_code == 200
            assert ok.headers["content-type"] == metrics.CONTENT_TYPE
            assert ok.headers["cache-control"] == "no-store"
            found = families(ok.text)
            assert sample(ok.text, "alttext_metrics_database_ok") == 1
            assert "alttext_queue_depth" in found
            assert {s.labels["status"] for s in found["alttext_job_items"].samples} >= {
                "pending",
                "succeeded",
            }

            assert (await _get(port, "/healthz")).status_code == 404
            async with httpx.AsyncClient(timeout=15, trust_env=False) as client:
                post = await client.post(f"http://127.0.0.1:{port}/metrics")
            assert post.status_code == 405
        # Stopped with the block: the port is free again.
        assert not await _listening(port)

    unset = make_settings(database_url, worker_metrics_port=port)  # no ALTTEXT_METRICS_TOKEN
    async with open_process(unset, engine=False) as services, serving_metrics(unset, services):
        off = await _get(port, authorization=f"Bearer {TOKEN}")
        assert off.status_code == 404
        assert "ALTTEXT_METRICS_TOKEN" in off.json()["detail"]


@needs_redis
@pytest.mark.timeout(180)
async def test_a_worker_serves_the_series_its_job_items_record(database_url: str) -> None:
    """A real worker (in this process) runs a job item; its listener shows the credit it spent
    and the item's new state, with the token only."""
    port = free_port()
    settings = make_settings(
        database_url,
        redis_url=REDIS_URL,
        metrics_token=TOKEN,
        worker_metrics_port=port,
        cache_ttl_s=0,
        **FAST_JOBS,
    )
    auth = {"authorization": f"Bearer {TOKEN}"}
    with running_image_host() as host:
        host.image("/a.png", png(5))
        async with open_process(settings, engine=False) as services:
            async with transaction(services.sessions) as session:
                account = await create_account(session, "worker-metrics@example.com")
                await grant_starting_credits(session, account, 5)
            stop = asyncio.Event()
            worker = asyncio.create_task(run_worker(settings, stop))
            try:
                await wait_for(lambda: _listening(port), timeout=60)
                assert (await _get(port)).status_code == 401
                before = (await _get(port, **auth)).text
                job = await jobs_service.create_job(
                    services.sessions,
                    settings,
                    account_id=account.id,
                    key_id=None,
                    spec=JobCreate.model_validate({"items": [{"image_url": host.url("/a.png")}]}),
                )
                await jobs_tasks.wake_account(services, account.id)

                async def succeeded() -> bool:
                    async with services.sessions() as session:
                        status = await session.scalar(
                            select(JobItem.status).where(JobItem.job_id == job.id)
                        )
                    return status == "succeeded"

                await wait_for(succeeded, timeout=90)
                after = await _get(port, **auth)
            finally:
                stop.set()
                await asyncio.wait_for(worker, timeout=30)
    assert after.status_code == 200
    spent = "alttext_credits_spent_total"
    assert sample(after.text, spent) - sample(before, spent) == 1
    assert sample(after.text, "alttext_job_items", status="succeeded") >= 1
    assert "alttext_queue_depth" in families(after.text)
    assert not await _listening(port)  # the worker stopped its listener


# -- live gauges of processes that ended --------------------------------------------------------

_RECORDER = textwrap.dedent(
    """
    import os
    import sys
    from alttext import metrics

    metrics.record_circuit_state("google/gemini-2.5-flash-lite", "open")
    metrics.record_credits_spent(1)
    if sys.argv[1] == "clean":
        metrics.process_exited()
    print(os.getpid())
    """
)


def _record(directory: Path, how: str) -> int:
    env = {**os.environ, metrics.MULTIPROC_ENV: str(directory)}
    done = subprocess.run(
        [sys.executable, "-c", _RECORDER, how],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return int(done.stdout.strip())


def _circuit_pids(text: str) -> set[str]:
    found = families(text).get("alttext_circuit_state")
    return {s.labels["pid"] for s in found.samples} if found else set()


def test_a_process_that_exits_cleanly_takes_its_live_gauges_along(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    killed = _record(tmp_path, "killed")  # ended without process_exited (SIGKILL, a crash)
    clean = _record(tmp_path, "clean")
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(tmp_path))
    text = metrics.render().decode()
    assert _circuit_pids(text) == {str(killed)}
    assert sample(text, "alttext_circuit_state", model=GEMINI, pid=str(killed)) == 1
    # Counters stay summed: totals never drop when a process goes.
    assert sample(text, "alttext_credits_spent_total") == 2
    assert clean != killed


@needs_redis
@pytest.mark.timeout(180)
async def test_a_worker_process_is_scraped_and_its_gauges_leave_with_it(
    database_url: str, fake_openrouter: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alttext worker`` as an OS process in multiprocess mode: scraped on its port (its
    circuit breakers, with its pid), then SIGTERMed: it exits 0 and its live gauges are gone."""
    assert REDIS_URL is not None
    port = free_port()
    folder = tmp_path / "prometheus"
    folder.mkdir()
    settings = make_settings(database_url, redis_url=REDIS_URL)
    env = {
        **os.environ,
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_REDIS_URL": REDIS_URL,
        "ALTTEXT_SECRET_KEY": settings.secret_key,
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake_openrouter.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "ALTTEXT_MODELS": GEMINI,
        "ALTTEXT_METRICS_TOKEN": TOKEN,
        "ALTTEXT_WORKER_METRICS_PORT": str(port),
        "ALTTEXT_LOG_LEVEL": "INFO",
        metrics.MULTIPROC_ENV: str(folder),
    }
    log = tmp_path / "worker.log"
    with log.open("ab") as sink:
        proc = subprocess.Popen(
            [sys.executable, "-m", "alttext", "worker"],
            env=env,
            cwd=tmp_path,  # no .env of the checkout
            stdout=sink,
            stderr=sink,
        )
    try:
        try:
            await wait_for(lambda: _listening(port), timeout=90)
        except Exception:
            raise AssertionError(log.read_text(errors="replace")[-4000:]) from None
        assert (await _get(port)).status_code == 401
        answer = await _get(port, authorization=f"Bearer {TOKEN}")
        assert answer.status_code == 200
        assert sample(answer.text, "alttext_circuit_state", model=GEMINI, pid=str(proc.pid)) == 0
        assert sample(answer.text, "alttext_metrics_database_ok") == 1
        assert list(folder.glob(f"gauge_liveall_{proc.pid}.db"))

        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 45) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert not list(folder.glob(f"gauge_liveall_{proc.pid}.db"))
    monkeypatch.setenv(metrics.MULTIPROC_ENV, str(folder))
    assert str(proc.pid) not in _circuit_pids(metrics.render().decode())
