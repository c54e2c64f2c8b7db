"""Dependencies failing under load: Redis and PostgreSQL cut, DNS failing, image hosts gone.

Redis and PostgreSQL are cut by a TCP fault proxy (tests/fakes/tcp_proxy.py) that the service
reaches them through, so no real service is ever stopped: ``refuse`` is a stopped server
(connections refused, open ones reset), ``blackhole`` a partition (nothing gets through, no
error either). The policies under test are docs/operations.md's:

* Redis unreachable: requests keep succeeding on per-process limits, the result cache is
  bypassed (every request calls the model and is charged), a job created meanwhile waits, and
  all of it returns to Redis once it answers again, without restarting anything; ``/readyz``
  reports ``limits.status: "degraded"`` meanwhile.
* Database unreachable: 503 ``service_unavailable`` problem+json with ``Retry-After`` (never a
  500), nothing charged, and recovery once it answers again, without a restart.
* A name that does not resolve, a resolver that hangs, a closed port, a host that resets or
  never answers: 400 ``image_fetch_failed``, nothing charged.

Unmarked tests are the short variants of the normal suite; ``@pytest.mark.chaos`` marks the
long ones. Figures go to ``var/chaos/<name>.json``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from alttext.db import create_engine
from alttext.describe import fetch
from tests.chaos.test_crashes import (
    Answer,
    Load,
    money,
    new_account,
    post_answer,
    record,
    service_env,
    service_process,
    wait_until,
)
from tests.conftest import PG_URL, REDIS_URL, Service, _truncate_postgres
from tests.fakes.fixtures import running_image_host
from tests.fakes.image_host import FakeImageHost
from tests.fakes.openrouter import FakeOpenRouter, Slow
from tests.fakes.tcp_proxy import TcpProxy, running_tcp_proxy
from tests.jobs.helpers import png
from tests.processes import free_port

needs_redis = pytest.mark.skipif(REDIS_URL is None, reason="needs ALTTEXT_TEST_REDIS_URL")
needs_postgres = pytest.mark.skipif(PG_URL is None, reason="needs ALTTEXT_TEST_DATABASE_URL")
MODEL_S = 0.2  # the fake model's answer time


# -- harness ---------------------------------------------------------------------------------


@contextmanager
def redis_proxy() -> Iterator[tuple[TcpProxy, str]]:
    """A fault proxy in front of the test Redis, and the URL that goes through it."""
    assert REDIS_URL is not None
    real = urlsplit(REDIS_URL)
    with running_tcp_proxy(real.hostname or "127.0.0.1", real.port or 6379) as proxy:
        netloc = f"{real.username or ''}{':' + real.password if real.password else ''}"
        netloc = f"{netloc}@" if netloc else ""
        yield proxy, f"{real.scheme}://{netloc}127.0.0.1:{proxy.port}{real.path}"


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """One SQLite database, for scenarios whose subject is not the database."""
    path = tmp_path / "chaos.db"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


def worker_process(env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "alttext", "worker"],
        env={**os.environ, **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@asynccontextmanager
async def api_client(port: int) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=180) as client:
        yield client


async def readyz(client: httpx.AsyncClient) -> tuple[int, dict[str, Any]]:
    response = await client.get("/readyz")
    return response.status_code, response.json()


async def create_job(client: httpx.AsyncClient, key: str, host: FakeImageHost, n: int) -> str:
    items = []
    for i in range(n):
        path = f"/job/{time.monotonic_ns()}-{i}.png"
        host.image(path, png(200 + i))
        items.append({"image_url": host.url(path)})
    response = await client.post(
        "/v1/jobs", headers={"Authorization": f"Bearer {key}"}, json={"items": items}
    )
    assert response.status_code == 202, response.text
    return str(response.json()["id"])


async def job_status(client: httpx.AsyncClient, key: str, job_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/jobs/{job_id}", headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.text
    return dict(response.json())


def no_server_errors(outcomes: Counter[str]) -> bool:
    return not any(o.startswith("5") for o in outcomes)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


# -- Redis -----------------------------------------------------------------------------------


async def _redis_cut(
    database_url: str,
    fake: FakeOpenRouter,
    *,
    name: str,
    mode: str,
    loops: int,
    cut_s: float,
) -> None:
    credits = 10_000
    account_id, key = await new_account(database_url, credits, f"{name}@example.com")
    fake.respond_with(lambda _body, _model: Slow(MODEL_S))
    port = free_port()
    with redis_proxy() as (proxy, redis_url):
        env = service_env(database_url, fake, ALTTEXT_REDIS_URL=redis_url)
        with service_process(env, port, log=f"{name}_{mode}"):
            async with api_client(port) as client:
                load = Load(client, key, loops, seeds=1_000_000)
                load.start()

                async def limits_ok() -> bool:
                    return bool((await readyz(client))[1]["checks"]["limits"]["status"] == "ok")

                warm: list[Answer] = []

                async def cache_answers_repeat() -> bool:
                    warm.append(await post_answer(client, key, 1))
                    warm.append(await post_answer(client, key, 1))
                    return warm[-1].cached

                # Up: the cache answers a repeat for free; limits are global. Polled, not
                # asserted at once: on a loaded machine a first call through the proxy can
                # outlast Redis' 0.5 s socket timeout, and the cache is then bypassed for its
                # 5 s retry interval, as designed.
                await wait_until(cache_answers_repeat, 30, "the cache on Redis", 0.2)
                await wait_until(limits_ok, 30, "limits on Redis", 0.2)
                assert (warm[0].credits, warm[-1].credits) == (1, 0)
                await asyncio.sleep(1.0)
                up = load.take()

                proxy.pause(mode)  # type: ignore[arg-type]
                cut_at = time.monotonic()
                latencies_before = len(load.latencies)
                status, ready = await readyz(client)
                # The cache is bypassed: a cached answer is not found, nothing new is kept.
                was_cached = await post_answer(client, key, 1)
                once = await post_answer(client, key, 2)
                twice = await post_answer(client, key, 2)
                await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
                degraded = (await readyz(client))[1]["checks"]["limits"]
                during = load.take()
                latencies_during = load.latencies[latencies_before:]

                proxy.resume()

                limits_back_s = await wait_until(limits_ok, 30, "limits back on Redis", 0.2)
                probe = iter(range(3, 10_000))
                probed: list[Answer] = []

                async def cache_back() -> bool:
                    seed = next(probe)
                    probed.append(await post_answer(client, key, seed))
                    probed.append(await post_answer(client, key, seed))
                    return probed[-1].cached

                cache_back_s = await wait_until(cache_back, 30, "cache back on Redis", 0.2)
                await asyncio.sleep(1.0)
                await load.stop()
                after = load.take()
        final = await money(database_url, account_id)
    spent = credits - final.balance
    answered_charges = (
        load.charged
        + sum(a.credits for a in warm)
        + was_cached.credits
        + once.credits
        + twice.credits
        + sum(a.credits for a in probed)
    )
    figures = {
        "mode": mode,
        "cut_s": cut_s,
        "concurrent_clients": loops,
        "requests": sum((up + during + after).values()),
        "outcomes": {"before": dict(up), "during_cut": dict(during), "after": dict(after)},
        "latency_during_cut_s": {
            "p50": percentile(latencies_during, 0.5),
            "p99": percentile(latencies_during, 0.99),
            "max": percentile(latencies_during, 1.0),
        },
        "readyz_during_cut": {"status": status, "limits": ready["checks"]["limits"]},
        "cache_during_cut": {
            "cached_answer_found": was_cached.cached,
            "repeat_found": twice.cached,
            "credits_of_repeat": twice.credits,
        },
        "recovery_s": {
            "limits_back_on_redis": round(limits_back_s, 2),
            "cache_back": round(cache_back_s, 2),
        },
        "credits_spent": spent,
        "credits_in_answers": answered_charges,
        "ledger_sum": final.ledger,
        "balance": final.balance,
        "held": final.held,
    }
    record(f"{name}_{mode}", figures)
    assert no_server_errors(up + during + after), figures
    assert set(during) == {"200"}, figures
    assert status == 200
    assert ready["checks"]["limits"]["status"] == "degraded"
    assert degraded["policy"] == "local limits while Redis is unreachable"
    assert not was_cached.cached
    assert was_cached.credits == 1
    assert (once.credits, twice.credits, twice.cached) == (1, 1, False)
    assert final.held == 0
    assert final.ledger == final.balance
    # Every credit spent is one an answer reported (usage.credits), and the other way round.
    assert spent == answered_charges


@needs_redis
async def test_redis_cut_under_load_keeps_serving_and_recovers(
    sqlite_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    """Short: Redis refused for 3 s under 4 clients, then back."""
    await _redis_cut(
        sqlite_url, fake_openrouter, name="redis_cut_short", mode="refuse", loops=4, cut_s=3
    )


@needs_redis
@pytest.mark.chaos
@pytest.mark.timeout(300)
@pytest.mark.parametrize("mode", ["refuse", "blackhole"])
async def test_chaos_redis_cut_long(
    sqlite_url: str, fake_openrouter: FakeOpenRouter, mode: str
) -> None:
    """Long: Redis gone for 15 s under 12 clients, as a stopped server and as a partition
    (where every Redis call waits out its socket timeout)."""
    await _redis_cut(
        sqlite_url, fake_openrouter, name="redis_cut_long", mode=mode, loops=12, cut_s=15
    )


async def _redis_cut_with_workers(
    database_url: str, fake: FakeOpenRouter, *, name: str, workers: int, cut_s: float
) -> None:
    """`alttext worker` processes on the proxied Redis: a job created during the cut waits,
    then runs when Redis is back; no process is restarted."""
    credits = 1000
    account_id, key = await new_account(database_url, credits, f"{name}@example.com")
    fake.respond_with(lambda _body, _model: Slow(MODEL_S))
    port = free_port()
    with redis_proxy() as (proxy, redis_url), running_image_host() as host:
        env = service_env(
            database_url,
            fake,
            ALTTEXT_REDIS_URL=redis_url,
            ALTTEXT_ALLOW_PRIVATE_URLS="true",
            ALTTEXT_JOB_SWEEP_S="0.5",
            ALTTEXT_JOB_LEASE_S="5",
            ALTTEXT_CACHE_TTL_S="0",
        )
        procs = [worker_process(env) for _ in range(workers)]
        try:
            with service_process(env, port):
                async with api_client(port) as client:
                    before = await create_job(client, key, host, 3)

                    async def done(job_id: str) -> bool:
                        return bool(
                            (await job_status(client, key, job_id))["status"] == "completed"
                        )

                    await wait_until(lambda: done(before), 60, "the first job done")
                    proxy.pause()
                    job_id = await create_job(client, key, host, 3)
                    await asyncio.sleep(cut_s)
                    waiting = await job_status(client, key, job_id)
                    alive_during = [p.poll() is None for p in procs]
                    proxy.resume()
                    assert alive_during == [True] * workers, "a worker died with Redis"
                    assert waiting["status"] == "queued"
                    ran_s = await wait_until(lambda: done(job_id), 60, "the job run after the cut")
                    assert all(p.poll() is None for p in procs), "a worker died"
            final = await money(database_url, account_id)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
                    p.wait(timeout=30)
    record(
        name,
        {
            "workers": workers,
            "cut_s": cut_s,
            "job_during_cut": waiting["counts"],
            "resume_to_job_completed_s": round(ran_s, 2),
            "reservations": dict(final.reservations),
        },
    )
    assert final.ledger == final.balance == credits - 6
    assert final.reservations["settled"] == 6


@needs_redis
async def test_a_job_created_while_redis_is_cut_is_accepted_and_waits(
    service_factory: Any,
) -> None:
    with redis_proxy() as (proxy, redis_url), running_image_host() as host:
        host.image("/a.png", png(1))
        async with service_factory(redis_url=redis_url, allow_private_urls=True) as svc:
            account = await svc.create_account("job-cut@example.com", credits=10)
            proxy.pause()
            items = [{"image_url": host.url("/a.png")}]
            response = await svc.client.post(
                "/v1/jobs", headers=account.headers, json={"items": items}
            )
            listed = await svc.client.get("/v1/jobs", headers=account.headers)
            record(
                "redis_cut_job_creation",
                {
                    "status": response.status_code,
                    "code": response.json().get("code"),
                    "jobs_stored": len(listed.json()["data"]),
                },
            )
            assert response.status_code == 202, response.text
            job_url = f"/v1/jobs/{response.json()['id']}"
            job = (await svc.client.get(job_url, headers=account.headers)).json()
            assert job["status"] == "queued"  # no worker in this test: it waits for one
            proxy.resume()


@needs_redis
async def test_redis_cut_with_a_worker_job_waits_then_runs(
    sqlite_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    await _redis_cut_with_workers(
        sqlite_url, fake_openrouter, name="redis_cut_worker_short", workers=1, cut_s=3
    )


@needs_redis
@pytest.mark.chaos
@pytest.mark.timeout(300)
async def test_chaos_redis_cut_with_two_workers(
    sqlite_url: str, fake_openrouter: FakeOpenRouter
) -> None:
    await _redis_cut_with_workers(
        sqlite_url, fake_openrouter, name="redis_cut_workers_long", workers=2, cut_s=15
    )


# -- PostgreSQL ------------------------------------------------------------------------------


async def _postgres_cut(
    request: pytest.FixtureRequest,
    fake: FakeOpenRouter,
    *,
    name: str,
    mode: str,
    loops: int,
    cut_s: float,
) -> None:
    assert PG_URL is not None
    real_url: str = request.getfixturevalue("postgres_migrated")
    await _truncate_postgres(real_url)
    credits = 10_000
    account_id, key = await new_account(real_url, credits, f"{name}@example.com")
    fake.respond_with(lambda _body, _model: Slow(MODEL_S))
    real = make_url(real_url)
    port = free_port()
    ttl_s = 3.0
    with running_tcp_proxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
        proxied = real.set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
        env = service_env(
            proxied,
            fake,
            ALTTEXT_CACHE_TTL_S="0",
            ALTTEXT_RESERVATION_TTL_S=str(ttl_s),
            ALTTEXT_RESERVATION_SWEEP_S="0.2",
        )
        with service_process(env, port, log=f"{name}_{mode}"):
            async with api_client(port) as client:
                load = Load(client, key, loops, seeds=2_000_000)
                load.start()
                await asyncio.sleep(1.5)
                up = load.take()
                proxy.pause(mode)  # type: ignore[arg-type]
                cut_at = time.monotonic()
                latencies_before = len(load.latencies)
                sample = await post_answer(client, key, 5)
                ready_status, ready = await readyz(client)
                await asyncio.sleep(max(0.0, cut_s - (time.monotonic() - cut_at)))
                during = load.take()
                latencies_during = load.latencies[latencies_before:]
                proxy.resume()
                resumed_at = time.monotonic()

                async def serving() -> bool:
                    return (await post_answer(client, key, 6)).outcome == "200"

                recovery_s = await wait_until(serving, 60, "serving again", 0.1)
                # Requests answered between the resume and the first 200 (in flight across it).
                transition = load.take()
                await asyncio.sleep(1.5)
                await load.stop()
                after = load.take()

                async def released() -> bool:
                    return (await money(real_url, account_id)).held == 0

                release_s = await wait_until(released, ttl_s + 30, "held credits released")
                ready_after = (await readyz(client))[0]
                answered = load.charged + sample.credits + 1  # + the probe that answered 200
    final = await money(real_url, account_id)
    spent = credits - final.balance
    figures = {
        "mode": mode,
        "cut_s": cut_s,
        "concurrent_clients": loops,
        "requests": sum((up + during + transition + after).values()),
        "outcomes": {
            "before": dict(up),
            "during_cut": dict(during),
            "resume_to_first_200": dict(transition),
            "after": dict(after),
        },
        "latency_during_cut_s": {
            "p50": percentile(latencies_during, 0.5),
            "p99": percentile(latencies_during, 0.99),
            "max": percentile(latencies_during, 1.0),
        },
        "sample_during_cut": {
            "outcome": sample.outcome,
            "retry_after": sample.headers.get("retry-after") if sample.headers else None,
            "content_type": sample.headers.get("content-type") if sample.headers else None,
        },
        "readyz_during_cut": {"status": ready_status, "database": ready["checks"]["database"]},
        "recovery_s": {
            "resume_to_first_200": round(recovery_s, 2),
            "resume_to_every_credit_settled": round(time.monotonic() - resumed_at, 2),
            "held_released_after_s": round(release_s, 2),
        },
        "readyz_after": ready_after,
        "unmapped_500_in_flight_at_cut": during["500 internal_error"]
        + transition["500 internal_error"],
        "credits_spent": spent,
        "answers_charged": answered,
        "reservations": dict(final.reservations),
        "ledger_sum": final.ledger,
        "balance": final.balance,
    }
    record(f"{name}_{mode}", figures)
    assert no_server_errors(up + after), figures
    # Even a request whose connection is cut in the middle of a statement gets the 503.
    assert set(during + transition) <= {"200", "503 service_unavailable"}, figures
    assert during["503 service_unavailable"] > 0
    assert sample.outcome == "503 service_unavailable"
    assert sample.headers is not None
    assert sample.headers["retry-after"] == "5"
    assert sample.headers["content-type"] == "application/problem+json"
    assert ready_status == 503
    assert ready["status"] == "not_ready"
    assert set(after) == {"200"}
    assert ready_after == 200
    assert final.held == 0
    assert final.ledger == final.balance
    # A 503 charged nothing. The one exception would be a COMMIT that reached the server just
    # as the line was cut, its acknowledgement lost: at most one per request then in flight.
    assert answered <= spent <= answered + loops


@needs_postgres
async def test_postgres_cut_under_load_answers_503_then_recovers(
    request: pytest.FixtureRequest, fake_openrouter: FakeOpenRouter
) -> None:
    """Short: PostgreSQL refused for 2 s under 4 clients."""
    await _postgres_cut(
        request, fake_openrouter, name="postgres_cut_short", mode="refuse", loops=4, cut_s=2
    )


@needs_postgres
@pytest.mark.chaos
@pytest.mark.timeout(300)
async def test_chaos_postgres_cut_long(
    request: pytest.FixtureRequest, fake_openrouter: FakeOpenRouter
) -> None:
    """Long: PostgreSQL refused for 15 s under 12 clients."""
    await _postgres_cut(
        request, fake_openrouter, name="postgres_cut_long", mode="refuse", loops=12, cut_s=15
    )


@needs_postgres
async def test_postgres_cut_in_the_middle_of_a_transaction_answers_503(
    request: pytest.FixtureRequest, fake_openrouter: FakeOpenRouter
) -> None:
    """Deterministic: requests wait inside their reservation's UPDATE (the test holds the
    account's row lock) when the line is cut under them."""
    real_url: str = request.getfixturevalue("postgres_migrated")
    await _truncate_postgres(real_url)
    account_id, key = await new_account(real_url, 10, "mid-transaction@example.com")
    fake_openrouter.respond_with(lambda _body, _model: Slow(MODEL_S))
    real = make_url(real_url)
    port = free_port()
    locker = create_engine(real_url)
    try:
        with running_tcp_proxy(real.host or "127.0.0.1", real.port or 5432) as proxy:
            proxied = real.set(host="127.0.0.1", port=proxy.port)
            env = service_env(proxied.render_as_string(hide_password=False), fake_openrouter)
            with service_process(env, port, log="postgres_cut_mid_transaction"):
                async with api_client(port) as client:
                    assert (await post_answer(client, key, 1)).outcome == "200"
                    async with locker.connect() as lock:
                        await lock.execute(
                            text("SELECT 1 FROM accounts WHERE id = :id FOR UPDATE"),
                            {"id": account_id},
                        )
                        flying = [
                            asyncio.create_task(post_answer(client, key, seed))
                            for seed in range(2, 5)
                        ]

                        async def waiting_on_the_lock() -> bool:
                            async with locker.connect() as probe:
                                n = await probe.scalar(
                                    text(
                                        "SELECT count(*) FROM pg_stat_activity "
                                        "WHERE wait_event_type = 'Lock' AND datname = :db"
                                    ),
                                    {"db": real.database},
                                )
                            return int(n or 0) >= 3

                        await wait_until(waiting_on_the_lock, 30, "requests waiting on the lock")
                        proxy.pause()
                        answers = await asyncio.gather(*flying)
                        await lock.rollback()
                    proxy.resume()
                    record(
                        "postgres_cut_mid_transaction",
                        {"outcomes": dict(Counter(a.outcome for a in answers))},
                    )
                    assert (await post_answer(client, key, 9)).outcome == "200"
    finally:
        await locker.dispose()
    final = await money(real_url, account_id)
    assert final.ledger == final.balance == 8  # the two answered requests, nothing else
    assert [a.outcome for a in answers] == ["503 service_unavailable"] * 3


@needs_postgres
@pytest.mark.chaos
@pytest.mark.timeout(600)
async def test_chaos_postgres_partition(
    request: pytest.FixtureRequest, fake_openrouter: FakeOpenRouter
) -> None:
    """A partition (packets dropped, no RST): the policy says 503 within seconds."""
    await _postgres_cut(
        request, fake_openrouter, name="postgres_partition", mode="blackhole", loops=4, cut_s=10
    )


# -- DNS and unreachable image hosts ---------------------------------------------------------


async def _failing_resolver(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")


async def _servfail_resolver(host: str, port: int) -> list[str]:
    raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


async def _empty_resolver(host: str, port: int) -> list[str]:
    return []


async def _hanging_resolver(host: str, port: int) -> list[str]:
    await asyncio.sleep(3600)
    return []


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("case", "resolver", "detail"),
    [
        ("nxdomain", _failing_resolver, "Could not resolve"),
        ("servfail", _servfail_resolver, "Could not resolve"),
        ("no_addresses", _empty_resolver, "Could not resolve"),
        ("resolver_hangs", _hanging_resolver, "timed out"),
    ],
)
async def test_dns_failures_are_a_clean_400(
    service_factory: Any,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    resolver: Any,
    detail: str,
) -> None:
    monkeypatch.setattr(fetch, "_getaddrinfo", resolver)
    async with service_factory(fetch_timeout_s=1.5) as svc:
        await _assert_fetch_failed(svc, "http://images.example/cat.png", detail)


@contextmanager
def _unreachable(case: str) -> Iterator[str]:
    """A URL on 127.0.0.1 whose host cannot serve: closed, resetting, silent or stalling."""
    if case == "closed_port":
        yield f"http://127.0.0.1:{_closed_port()}/cat.png"
    elif case == "reset":  # accepts, then resets: its own target is a closed port
        with running_tcp_proxy("127.0.0.1", _closed_port()) as proxy:
            yield f"http://127.0.0.1:{proxy.port}/cat.png"
    elif case == "blackhole":  # accepts, then silence
        with running_tcp_proxy("127.0.0.1", _closed_port()) as proxy:
            proxy.pause("blackhole")
            yield f"http://127.0.0.1:{proxy.port}/cat.png"
    else:  # answers the head, never the body
        with running_image_host() as host:
            host.stall("/cat.png", headers={"Content-Type": "image/png"})
            yield host.url("/cat.png")


@pytest.mark.parametrize(
    ("case", "detail"),
    [
        ("closed_port", "Could not fetch"),
        ("reset", "Could not fetch"),
        ("blackhole", "timed out"),
        ("stalled_body", "timed out"),
    ],
)
async def test_unreachable_image_hosts_are_a_clean_400(
    service_factory: Any, case: str, detail: str
) -> None:
    async with service_factory(fetch_timeout_s=1.5, allow_private_urls=True) as svc:
        with _unreachable(case) as url:
            await _assert_fetch_failed(svc, url, detail)


async def _assert_fetch_failed(svc: Service, url: str, detail: str) -> None:
    account = await svc.create_account("fetch@example.com", credits=5)
    started = time.monotonic()
    response = await svc.client.post(
        "/v1/alt-text", headers=account.headers, json={"image_url": url}
    )
    elapsed = time.monotonic() - started
    assert response.status_code == 400, response.text
    assert response.headers["content-type"] == "application/problem+json"
    problem = response.json()
    assert problem["code"] == "image_fetch_failed"
    assert detail in problem["detail"]
    assert elapsed < 1.5 + 5  # the fetch deadline, not a client's patience, ended it
    balance = await svc.client.get("/v1/account", headers=account.headers)
    assert balance.json()["credits_remaining"] == 5
