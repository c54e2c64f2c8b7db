"""Rate limits and concurrency caps: one suite run against both backends.

The Redis backend runs when ALTTEXT_TEST_REDIS_URL is set (and must then be reachable). Each
test uses its own uuid key prefix and deletes its keys afterwards: the db is shared.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import pytest
from redis.asyncio import Redis

from alttext.usage.backends import build_limiter
from alttext.usage.limits import Limiter, MemoryLimiter, RateDecision, gcra
from alttext.usage.limits_redis import RedisLimiter

REDIS_URL = os.environ.get("ALTTEXT_TEST_REDIS_URL")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")
LOG = "alttext.usage.limits"
DEAD_REDIS = "redis://127.0.0.1:1/0"


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000.0

    def __call__(self) -> float:
        return self.t


@dataclass
class Backend:
    limiter: Limiter
    # Moves time forward: the fake clock for memory; a real sleep for Redis (server TIME).
    advance: Callable[[float], Awaitable[None]]
    prefix: str


async def _delete_keys(raw: Redis, prefix: str) -> None:
    keys = [k async for k in raw.scan_iter(match=f"alttext:*:{prefix}*")]
    if keys:
        await raw.delete(*keys)


@pytest.fixture
def prefix() -> str:
    return f"test-{uuid.uuid4().hex}"


@asynccontextmanager
async def _redis_for_test(prefix: str) -> AsyncIterator[Redis]:
    assert REDIS_URL
    raw = Redis.from_url(REDIS_URL)
    await raw.ping()  # set but down is a failure, not a skip
    try:
        yield raw
    finally:
        await _delete_keys(raw, prefix)
        await raw.aclose()


@pytest.fixture
async def raw_redis(prefix: str) -> AsyncIterator[Redis]:
    async with _redis_for_test(prefix) as raw:
        yield raw


@pytest.fixture(params=["memory", pytest.param("redis", marks=[pytest.mark.redis, needs_redis])])
async def backend(request: pytest.FixtureRequest, prefix: str) -> AsyncIterator[Backend]:
    if request.param == "memory":
        clock = FakeClock()

        async def tick(seconds: float) -> None:
            clock.t += seconds

        yield Backend(MemoryLimiter(clock=clock), tick, prefix)
        return

    async def sleep(seconds: float) -> None:
        await asyncio.sleep(seconds + 0.02)

    async with _redis_for_test(prefix):
        assert REDIS_URL
        # A generous timeout: these tests are about semantics, and a fallback would hide them.
        limiter = RedisLimiter(REDIS_URL, socket_timeout_s=5)
        yield Backend(limiter, sleep, prefix)
        # Had Redis failed mid-test the answers came from the local fallback: proof of nothing.
        assert not limiter.degraded
        await limiter.aclose()


async def test_allows_exactly_limit_then_denies(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:a"
    decisions = [await lim.hit(key, 5, 60) for _ in range(5)]
    assert all(d.allowed for d in decisions)
    assert [d.remaining for d in decisions] == [4, 3, 2, 1, 0]
    # Quota fully back after k emission intervals of 12 s; at 0 left, the next slot's wait.
    assert [d.reset_s for d in decisions] == [12, 24, 36, 48, 12]
    assert all(d.retry_after_s is None for d in decisions)

    denied = await lim.hit(key, 5, 60)
    assert denied == RateDecision(False, 5, 0, 12, 12)
    assert denied.headers() == {
        "RateLimit-Limit": "5",
        "RateLimit-Remaining": "0",
        "RateLimit-Reset": "12",
        "Retry-After": "12",
    }
    # Denials do not consume: still the same wait.
    assert (await lim.hit(key, 5, 60)).retry_after_s == 12


async def test_keys_are_independent(backend: Backend) -> None:
    lim = backend.limiter
    a, b = f"{backend.prefix}:a", f"{backend.prefix}:b"
    assert [(await lim.hit(a, 2, 60)).allowed for _ in range(3)] == [True, True, False]
    first_b = await lim.hit(b, 2, 60)
    assert first_b.allowed
    assert first_b.remaining == 1


async def test_recovers_one_request_per_interval(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:a"
    # 4 per 2 s: one request every 0.5 s after the burst.
    assert [(await lim.hit(key, 4, 2)).allowed for _ in range(4)] == [True] * 4
    denied = await lim.hit(key, 4, 2)
    assert not denied.allowed
    assert denied.retry_after_s == 1
    await backend.advance(0.5)
    again = await lim.hit(key, 4, 2)
    assert again.allowed
    assert again.remaining == 0
    assert not (await lim.hit(key, 4, 2)).allowed


async def test_concurrent_hits_admit_exactly_the_limit(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:a"
    # A long window: with 72 s per request no refill can land during the burst.
    decisions = await asyncio.gather(*(lim.hit(key, 50, 3600) for _ in range(200)))
    allowed = [d for d in decisions if d.allowed]
    assert len(allowed) == 50
    # Every allowed request saw a distinct count: no two read the same state.
    assert sorted(d.remaining for d in allowed) == list(range(50))
    assert all(d.retry_after_s and d.retry_after_s > 0 for d in decisions if not d.allowed)


async def test_concurrency_slots(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:acct"
    tokens = [await lim.acquire(key, 3) for _ in range(3)]
    assert all(tokens)
    assert len(set(tokens)) == 3
    assert await lim.acquire(key, 3) is None
    first = tokens[0]
    assert first is not None
    await lim.release(key, first)
    await lim.release(key, first)  # twice is harmless and frees nothing more
    await lim.release(key, "never-issued")
    assert await lim.acquire(key, 3) is not None
    assert await lim.acquire(key, 3) is None
    # Another account has its own slots.
    assert await lim.acquire(f"{backend.prefix}:other", 3) is not None


async def test_concurrent_acquires_admit_exactly_the_limit(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:acct"
    tokens = await asyncio.gather(*(lim.acquire(key, 7) for _ in range(40)))
    assert sum(t is not None for t in tokens) == 7


async def test_expired_slot_is_reclaimed(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:acct"
    assert await lim.acquire(key, 1, ttl_s=1) is not None
    assert await lim.acquire(key, 1, ttl_s=1) is None
    await backend.advance(1.05)  # the holder "crashed": never released
    assert await lim.acquire(key, 1, ttl_s=1) is not None


async def test_invalid_arguments(backend: Backend) -> None:
    lim, key = backend.limiter, f"{backend.prefix}:a"
    with pytest.raises(ValueError, match="limit"):
        await lim.hit(key, 0, 60)
    with pytest.raises(ValueError, match="window"):
        await lim.hit(key, 5, 0)
    with pytest.raises(ValueError, match="limit"):
        await lim.acquire(key, 0)


async def test_status_ok(backend: Backend) -> None:
    status = await backend.limiter.status()
    assert status["status"] == "ok"
    assert status["backend"] == backend.limiter.backend
    assert isinstance(backend.limiter, Limiter)


# --- memory only: exact arithmetic with a fake clock -----------------------------------------


async def test_memory_full_quota_back_after_reset() -> None:
    clock = FakeClock()
    lim = MemoryLimiter(clock=clock)
    for _ in range(3):
        last = await lim.hit("k", 10, 60)
    assert last.remaining == 7
    assert last.reset_s == 18  # 3 x 6 s
    clock.t += 18
    assert (await lim.hit("k", 10, 60)).remaining == 9
    clock.t += 5.999  # one interval is 6 s: not yet a whole request back
    assert (await lim.hit("k", 10, 60)).remaining == 8


async def test_memory_retry_after_is_exactly_enough() -> None:
    clock = FakeClock()
    lim = MemoryLimiter(clock=clock)
    for _ in range(3):
        await lim.hit("k", 3, 10)
    denied = await lim.hit("k", 3, 10)
    assert denied.retry_after_s == 4  # 10/3 s rounded up
    clock.t += 3
    assert not (await lim.hit("k", 3, 10)).allowed
    clock.t += 1
    assert (await lim.hit("k", 3, 10)).allowed


async def test_memory_forgets_idle_keys() -> None:
    clock = FakeClock()
    lim = MemoryLimiter(clock=clock)
    await lim.hit("idle", 5, 60)
    await lim.acquire("idle", 2, ttl_s=5)
    clock.t += 3600
    await lim.hit("busy", 5, 60)
    assert lim._tats.keys() == {"busy"}
    assert lim._slots == {}


def test_gcra_never_admits_more_than_burst_plus_refill() -> None:
    # Over any run, admitted <= limit + elapsed / interval: the defining GCRA bound.
    limit, window = 7, 60_000_000
    interval = window // limit
    tat, admitted, now = 0, 0, 10**12
    start = now
    for step in range(500):
        now += (step * 7919) % 3_000_000  # irregular arrivals
        allowed, tat, _, _ = gcra(tat, now, limit, window)
        admitted += allowed
        assert admitted <= limit + (now - start) // interval


def test_build_limiter_picks_backend() -> None:
    assert build_limiter(None).backend == "memory"
    assert build_limiter("").backend == "memory"
    assert build_limiter(DEAD_REDIS).backend == "redis"


# --- Redis down: fail open to local limits ---------------------------------------------------


async def test_dead_redis_falls_back_to_local_limits(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    lim = RedisLimiter(DEAD_REDIS)
    try:
        results = [await lim.hit("k", 3, 60) for _ in range(5)]
        assert [d.allowed for d in results] == [True, True, True, False, False]
        token = await lim.acquire("acct", 1)
        assert token is not None
        assert await lim.acquire("acct", 1) is None
        await lim.release("acct", token)
        assert await lim.acquire("acct", 1) is not None
        status = await lim.status()
        assert status == {
            "backend": "redis",
            "status": "degraded",
            "policy": "local limits while Redis is unreachable",
        }
        warnings = [r for r in caplog.records if r.name == LOG and r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage, not per request
    finally:
        await lim.aclose()


class TcpProxy:
    """A TCP relay to Redis that the test can cut and restore, to stage an outage."""

    def __init__(self, host: str, port: int) -> None:
        self.target = (host, port)
        self.port = 0
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for w in self._writers:
            w.close()
        self._writers.clear()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.target)
        self._writers += [writer, up_writer]

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except OSError:
                pass
            finally:
                dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))


@pytest.mark.redis
@needs_redis
async def test_outage_and_return_to_redis(
    raw_redis: Redis, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=LOG)
    assert REDIS_URL
    url = urlsplit(REDIS_URL)
    proxy = TcpProxy(url.hostname or "127.0.0.1", url.port or 6379)
    await proxy.start()
    clock = FakeClock()  # drives only the retry back-off; Redis keeps its own time
    lim = RedisLimiter(
        urlunsplit(url._replace(netloc=f"127.0.0.1:{proxy.port}")),
        socket_timeout_s=5,
        retry_interval_s=5,
        clock=clock,
    )
    key = f"{prefix}:k"
    try:
        assert (await lim.hit(key, 100, 3600)).remaining == 99
        assert (await lim.status())["status"] == "ok"

        await proxy.stop()
        local = [await lim.hit(key, 100, 3600) for _ in range(3)]
        assert all(d.allowed for d in local)
        assert [d.remaining for d in local] == [99, 98, 97]  # a fresh local count
        assert (await lim.status())["status"] == "degraded"

        await proxy.start()  # same port
        clock.t += 1  # inside the back-off: still local, Redis not yet probed
        assert (await lim.hit(key, 100, 3600)).remaining == 96
        clock.t += 5
        # Back on Redis, whose count missed the outage: only its 2nd hit.
        assert (await lim.hit(key, 100, 3600)).remaining == 98
        assert (await lim.status())["status"] == "ok"
        warnings = [r for r in caplog.records if r.name == LOG and r.levelno == logging.WARNING]
        assert len(warnings) == 1
        assert any("reachable again" in r.getMessage() for r in caplog.records)
    finally:
        await lim.aclose()
        await proxy.stop()


@pytest.mark.redis
@needs_redis
async def test_redis_keys_are_namespaced_and_expire(raw_redis: Redis, prefix: str) -> None:
    assert REDIS_URL
    lim = RedisLimiter(REDIS_URL, socket_timeout_s=5)
    try:
        await lim.hit(f"{prefix}:k", 10, 60)
        token = await lim.acquire(f"{prefix}:acct", 2, ttl_s=30)
        assert token is not None
        rate_ttl = await raw_redis.pttl(f"alttext:rl:{prefix}:k")
        slot_ttl = await raw_redis.pttl(f"alttext:cc:{prefix}:acct")
        assert 0 < rate_ttl <= 6_000  # the bucket is full again one interval later
        assert 25_000 < slot_ttl <= 30_000
        assert await raw_redis.zscore(f"alttext:cc:{prefix}:acct", token) is not None
        await lim.release(f"{prefix}:acct", token)
        assert await raw_redis.zcard(f"alttext:cc:{prefix}:acct") == 0
        assert not lim.degraded
    finally:
        await lim.aclose()
