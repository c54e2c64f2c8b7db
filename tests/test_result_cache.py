"""The result cache module: both backends (Redis when ALTTEXT_TEST_REDIS_URL is set), the key,
the values (text only, never image bytes), the TTL, the LRU bounds, per-account erasure, Redis
down, and single flight in a process and across two (Redis)."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from typing import Any

import pytest

from alttext.describe.errors import UpstreamError
from alttext.describe.types import DescribeOptions, Description, ImageInfo, Timing, Usage
from alttext.privacy.inventory import CACHE_FIELDS_DOC, result_cache_inventory
from alttext.result_cache import (
    CACHED_FIELDS,
    LOCAL_CLAIM,
    MemoryResultCache,
    RedisResultCache,
    ResultCache,
    build_result_cache,
    decode,
    encode,
    result_key,
)
from tests.conftest import REDIS_URL, make_settings

BACKENDS = ["memory"] + (["redis"] if REDIS_URL else [])
DOWN_URL = "redis://127.0.0.1:1/0"  # nothing listens there


def description(text: str = "Tabby cat asleep on a sunlit windowsill.") -> Description:
    return Description(
        alt_text=text,
        alt_texts={"en": text, "de": "Getigerte Katze"},
        decorative=False,
        role="informative",
        language="en",
        long_description=None,
        text_in_image="OPEN",
        needs_review=True,
        review_reasons=["check it"],
        model="google/gemini-2.5-flash-lite",
        image=ImageInfo(width=4032, height=3024, format="jpeg", sent_width=768, sent_height=576),
        usage=Usage(input_tokens=612, output_tokens=24, upstream_cost_usd=0.00007),
        timing=Timing(prepare_ms=9, upstream_ms=1820),
        cache_key="k" * 64,
        attempts=2,
        extra={"provider": "Google", "generation_id": "gen-123"},
    )


def key(n: int = 0) -> str:
    return result_key(f"{n:064x}", DescribeOptions(), provider="openrouter", models=("m/a",))


def account() -> str:
    return f"acct_{uuid.uuid4().hex[:16]}"


@pytest.fixture(params=BACKENDS)
async def cache(request: pytest.FixtureRequest) -> AsyncIterator[ResultCache]:
    made: ResultCache = (
        RedisResultCache(str(REDIS_URL), 60.0, lock_ttl_s=5.0, poll_s=0.02)
        if request.param == "redis"
        else MemoryResultCache(60.0, poll_s=0.02)
    )
    yield made
    await made.aclose()


# -- key and values --------------------------------------------------------------------------


def test_the_key_covers_every_option_the_model_and_the_deployment() -> None:
    base = DescribeOptions()
    variants = [
        replace(base, role="functional"),
        replace(base, context="A product page"),
        replace(base, link_target="/cart"),
        replace(base, languages=("de",)),
        replace(base, languages=("en", "de")),
        replace(base, max_length=80),
        replace(base, keywords=("mug",)),
        replace(base, long_description=True),
        replace(base, model="qwen/qwen2.5-vl-72b-instruct"),
    ]

    def k(options: DescribeOptions, **kw: Any) -> str:
        args: dict[str, Any] = {"provider": "openrouter", "models": ("m/a", "m/b"), **kw}
        return result_key("ab" * 32, options, **args)

    keys = {k(base)} | {k(v) for v in variants}
    keys |= {
        k(base, provider="local"),
        k(base, models=("m/b",)),
        result_key("cd" * 32, base, provider="openrouter", models=("m/a", "m/b")),
    }
    assert len(keys) == len(variants) + 4  # each differs from the base and from each other
    assert k(base) == k(DescribeOptions())  # and the same request gives the same key
    assert "ab" * 32 not in k(base)


def test_a_value_holds_the_text_fields_only() -> None:
    raw = encode(description())
    value = json.loads(raw)
    assert set(value) == {"v", *CACHED_FIELDS}
    for absent in ("usage", "timing", "extra", "attempts", "gen-123", "612"):
        assert absent not in value
    assert "gen-123" not in raw
    back = decode(raw)
    assert back is not None
    d = description()
    for name in CACHED_FIELDS:
        assert getattr(back, name) == getattr(d, name), name
    assert back.usage == Usage(input_tokens=0, output_tokens=0, upstream_cost_usd=0.0)
    assert back.timing == Timing(prepare_ms=0, upstream_ms=0)
    assert back.attempts == 0
    assert back.extra == {}


@pytest.mark.parametrize(
    "raw", [b"", b"not json", b"[]", b'{"v": 99}', b'{"v": 1, "alt_text": "x"}', b"\xff\xfe"]
)
def test_an_unreadable_value_is_a_miss(raw: bytes) -> None:
    assert decode(raw) is None


def test_the_privacy_inventory_lists_exactly_the_cached_fields() -> None:
    assert set(CACHE_FIELDS_DOC) == {"key", *CACHED_FIELDS}
    on = result_cache_inventory(86_400, redis=False)
    assert "24 hours" in on.retention
    assert "erased" in on.retention
    assert "memory" in on.where
    assert "Redis" in result_cache_inventory(3600, redis=True).where
    assert "turned off" in result_cache_inventory(0, redis=False).retention
    assert "never the image" in on.purpose


def test_the_backend_follows_the_redis_url() -> None:
    database_url = "sqlite+aiosqlite://"
    assert isinstance(build_result_cache(make_settings(database_url)), MemoryResultCache)
    redis = build_result_cache(make_settings(database_url, redis_url=DOWN_URL, cache_ttl_s=5))
    assert isinstance(redis, RedisResultCache)
    assert redis.ttl_s == 5
    assert make_settings(database_url).cache_ttl_s == 86_400


# -- storage ---------------------------------------------------------------------------------


async def test_put_get_per_account_and_clear(cache: ResultCache) -> None:
    alice, bob = account(), account()
    await cache.put(alice, key(1), description("one"))
    await cache.put(alice, key(2), description("two"))
    await cache.put(bob, key(1), description("bob's"))
    hit = await cache.get(alice, key(1))
    assert hit is not None
    assert hit.alt_text == "one"
    assert await cache.get(alice, key(3)) is None
    other = await cache.get(bob, key(1))
    assert other is not None  # scoped per account
    assert other.alt_text == "bob's"
    assert await cache.get(account(), key(1)) is None
    stored = await cache.stored(alice)
    assert len(stored) == 2
    assert all(set(json.loads(v)) == {"v", *CACHED_FIELDS} for v in stored)

    assert await cache.clear_account(alice) == 2
    assert await cache.get(alice, key(1)) is None
    assert await cache.get(alice, key(2)) is None
    assert await cache.stored(alice) == []
    assert await cache.get(bob, key(1)) is not None  # another account's entries stay
    await cache.clear_account(bob)


async def test_ttl_zero_stores_nothing_and_leads_every_flight() -> None:
    cache = MemoryResultCache(0)
    assert not cache.enabled
    await cache.put("acct_a", key(), description())
    assert await cache.get("acct_a", key()) is None
    assert len(cache) == 0
    async with cache.flight("acct_a", key()) as one, cache.flight("acct_a", key()) as two:
        assert one.leader  # no single flight either
        assert two.leader


async def test_memory_entries_expire_after_the_ttl() -> None:
    now = [1000.0]
    cache = MemoryResultCache(60, clock=lambda: now[0])
    await cache.put("acct_a", key(), description())
    now[0] += 59
    assert await cache.get("acct_a", key()) is not None
    now[0] += 2  # a hit does not extend the entry
    assert await cache.get("acct_a", key()) is None
    assert len(cache) == 0


@pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")
async def test_redis_entries_carry_the_ttl_and_the_documented_key() -> None:
    cache = RedisResultCache(str(REDIS_URL), 30.0)
    acct = account()
    try:
        await cache.put(acct, key(), description())
        name = f"alttext:cache:{acct}:{key()}"
        assert cache.entry_key(acct, key()) == name
        ttl_ms = await cache._redis.pttl(name)
        assert 25_000 < ttl_ms <= 30_000
        raw = await cache._redis.get(name)
        assert set(json.loads(raw)) == {"v", *CACHED_FIELDS}
    finally:
        await cache.clear_account(acct)
        await cache.aclose()


@pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")
async def test_redis_clear_escapes_the_account_id_in_the_pattern() -> None:
    cache = RedisResultCache(str(REDIS_URL), 30.0)
    tail = uuid.uuid4().hex[:8]
    try:
        await cache.put(f"acct_{tail}x", key(), description())
        await cache.put(f"acct_{tail}[x]", key(), description())
        assert await cache.clear_account(f"acct_{tail}*") == 0
        assert await cache.clear_account(f"acct_{tail}[x]") == 1
        assert await cache.get(f"acct_{tail}x", key()) is not None
    finally:
        await cache.clear_account(f"acct_{tail}x")
        await cache.aclose()


async def test_the_lru_is_bounded_in_entries_and_characters() -> None:
    cache = MemoryResultCache(60, max_entries=3)
    for n in range(3):
        await cache.put("acct_a", key(n), description(f"text {n}"))
    assert await cache.get("acct_a", key(0)) is not None  # now the most recently used
    await cache.put("acct_a", key(3), description("text 3"))
    assert len(cache) == 3
    assert await cache.get("acct_a", key(1)) is None  # the least recently used went
    assert await cache.get("acct_a", key(0)) is not None

    size = len(encode(description("x" * 100)))
    small = MemoryResultCache(60, max_chars=2 * size + 10)
    for n in range(3):
        await small.put("acct_a", key(n), description("x" * 100))
    assert len(small) == 2
    await small.put("acct_a", key(9), description("y" * 10 * size))  # larger than the bound
    assert await small.get("acct_a", key(9)) is None
    assert len(small) == 2


# -- Redis down ------------------------------------------------------------------------------


async def test_redis_down_is_a_bypass_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    cache = RedisResultCache(DOWN_URL, 60.0, socket_timeout_s=0.2, retry_interval_s=0.0)
    caplog.set_level(logging.WARNING, logger="alttext.result_cache")
    try:
        for _ in range(3):
            assert await cache.get("acct_a", key()) is None
            await cache.put("acct_a", key(), description())
            assert await cache._claim("acct_a", key()) == LOCAL_CLAIM
        async with cache.flight("acct_a", key()) as flight:
            assert flight.leader
            await flight.store(description())
        assert cache.degraded
        assert await cache.clear_account("acct_a") == 0
        warnings = [r for r in caplog.records if "result cache is bypassed" in r.getMessage()]
        assert len(warnings) == 1
    finally:
        await cache.aclose()


# -- single flight ---------------------------------------------------------------------------


async def _gather_flights(
    cache: ResultCache,
    acct: str,
    n: int,
    lead: Callable[[Any], Any],
) -> tuple[list[Any], int]:
    """``n`` identical requests; the leader runs ``lead(flight)``. Returns outcomes, leads."""
    leads = 0

    async def one() -> Any:
        nonlocal leads
        async with cache.flight(acct, key()) as flight:
            if flight.hit is not None:
                return flight.hit
            leads += 1
            return await lead(flight)

    outcomes = await asyncio.gather(*(one() for _ in range(n)), return_exceptions=True)
    return list(outcomes), leads


async def test_identical_concurrent_requests_share_one_call(cache: ResultCache) -> None:
    acct = account()

    async def lead(flight: Any) -> Description:
        await asyncio.sleep(0.2)
        d = description("shared")
        await flight.store(d)
        return d

    outcomes, leads = await _gather_flights(cache, acct, 10, lead)
    assert leads == 1
    assert [o.alt_text for o in outcomes] == ["shared"] * 10
    assert (await cache.get(acct, key())) is not None
    assert cache._flights == {}
    await cache.clear_account(acct)


async def test_the_models_error_is_shared_with_the_waiters(cache: ResultCache) -> None:
    acct = account()

    async def lead(flight: Any) -> Description:
        await asyncio.sleep(0.2)
        error = UpstreamError("The model provider failed.")
        flight.share(error)
        raise error

    outcomes, leads = await _gather_flights(cache, acct, 5, lead)
    assert leads == 1
    assert all(isinstance(o, UpstreamError) for o in outcomes)
    assert {o.detail for o in outcomes} == {"The model provider failed."}
    assert len({id(o) for o in outcomes}) == 5  # each waiter raised its own copy
    assert await cache.get(acct, key()) is None
    assert cache._flights == {}


async def test_a_leader_that_stops_for_its_own_reason_hands_over(cache: ResultCache) -> None:
    acct = account()
    calls = 0

    async def lead(flight: Any) -> Description:
        nonlocal calls
        calls += 1
        await asyncio.sleep(0.1)
        if calls == 1:
            raise RuntimeError("out of credits, cancelled, a bug: not the model's answer")
        d = description("second leader")
        await flight.store(d)
        return d

    outcomes, leads = await _gather_flights(cache, acct, 5, lead)
    assert leads == 2  # one waiter took over; the others got its answer
    failed = [o for o in outcomes if isinstance(o, RuntimeError)]
    assert len(failed) == 1
    assert sorted(o.alt_text for o in outcomes if o not in failed) == ["second leader"] * 4
    await cache.clear_account(acct)


async def test_a_cancelled_waiter_leaves_the_flight_running(cache: ResultCache) -> None:
    acct = account()
    release = asyncio.Event()

    async def leader() -> str:
        async with cache.flight(acct, key()) as flight:
            assert flight.leader
            await release.wait()
            await flight.store(description("done"))
            return "led"

    async def waiter() -> str:
        async with cache.flight(acct, key()) as flight:
            assert flight.hit is not None
            return flight.hit.alt_text

    lead_task = asyncio.create_task(leader())
    await asyncio.sleep(0.05)
    doomed = asyncio.create_task(waiter())
    patient = asyncio.create_task(waiter())
    await asyncio.sleep(0.05)
    doomed.cancel()
    release.set()
    assert await lead_task == "led"
    assert await patient == "done"
    with pytest.raises(asyncio.CancelledError):
        await doomed
    await cache.clear_account(acct)


@pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set")
async def test_across_processes_a_claim_makes_the_other_wait_for_the_answer() -> None:
    first = RedisResultCache(str(REDIS_URL), 60.0, lock_ttl_s=5.0, poll_s=0.02)
    second = RedisResultCache(str(REDIS_URL), 60.0, lock_ttl_s=5.0, poll_s=0.02)
    acct = account()
    try:
        started = asyncio.Event()
        finish = asyncio.Event()

        async def in_first() -> None:
            async with first.flight(acct, key()) as flight:
                assert flight.leader
                started.set()
                await finish.wait()
                await flight.store(description("from the first process"))

        task = asyncio.create_task(in_first())
        await started.wait()
        assert await first._redis.exists(first.lock_key(acct, key()))

        async def in_second() -> Description | None:
            async with second.flight(acct, key()) as flight:
                return flight.hit

        waiting = asyncio.create_task(in_second())
        await asyncio.sleep(0.2)
        assert not waiting.done()  # polling, not calling the model
        finish.set()
        await task
        hit = await waiting
        assert hit is not None
        assert hit.alt_text == "from the first process"
        assert not await first._redis.exists(first.lock_key(acct, key()))  # released

        # A leader that fails releases its claim: the other process then leads itself.
        await first.clear_account(acct)
        failing = asyncio.Event()

        async def fails() -> None:
            async with first.flight(acct, key()) as flight:
                assert flight.leader
                await failing.wait()
                raise RuntimeError("upstream gone")

        bad = asyncio.create_task(fails())
        await asyncio.sleep(0.05)

        async def takes_over() -> bool:
            async with second.flight(acct, key()) as flight:
                return flight.leader

        over = asyncio.create_task(takes_over())
        await asyncio.sleep(0.1)
        failing.set()
        with pytest.raises(RuntimeError):
            await bad
        assert await over is True
    finally:
        await first.clear_account(acct)
        await first.aclose()
        await second.aclose()
