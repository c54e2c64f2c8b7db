"""The Redis backend of :mod:`alttext.usage.limits`: one limit shared by every API process.

Each decision is one Lua script (one round trip, atomic). The scripts read the clock with
``redis.call('TIME')`` so every process agrees on time whatever its own clock says (Redis 7
replicates script effects, so a non-deterministic TIME is fine). Keys:
``<ns>:rl:<key>`` (a string: the GCRA tat in microseconds) and ``<ns>:cc:<key>`` (a sorted
set: member = slot token, score = expiry in ms). Both carry a TTL, so idle keys vanish.

Redis-down policy, "fail open to local limits": when Redis is unreachable (or errors) the
limiter answers from an in-process :class:`MemoryLimiter` instead of failing requests. Limits
then hold per process, not globally (N processes admit up to N x the limit). A warning is
logged once per outage, ``status()`` reports ``degraded``, and Redis is tried again every
``retry_interval_s`` by a single request (the others keep using local limits meanwhile); the
first success returns every decision to Redis. Short socket timeouts and no client retries
keep a dead Redis from stalling requests. Local slot tokens carry a ``local:`` prefix so a
release always goes to the backend that granted the slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from alttext.usage.limits import (
    LOCAL_SLOT_PREFIX,
    US,
    MemoryLimiter,
    RateDecision,
    check_args,
    decision,
    new_token,
)

__all__ = ["RedisLimiter"]

log = logging.getLogger("alttext.usage.limits")

# A copy of limits.gcra. Lua numbers are doubles: exact for integers below 2**53 (now in us is
# ~1.7e15), but tostring() would print them in exponent form, hence string.format('%.0f').
HIT_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local limit = tonumber(ARGV[1])
local interval = math.max(1, math.floor(tonumber(ARGV[2]) / limit))
local capacity = interval * limit
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
if new_tat - now > capacity then
  return {0, 0, string.format('%.0f', tat + interval - capacity - now)}
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat),
           'PX', string.format('%.0f', math.ceil((new_tat - now) / 1000)))
local remaining = math.floor((capacity - (new_tat - now)) / interval)
local reset = new_tat - now
if remaining == 0 then reset = new_tat + interval - capacity - now end
return {1, remaining, string.format('%.0f', reset)}
"""

ACQUIRE_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local limit = tonumber(ARGV[1])
local ttl = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', string.format('%.0f', now))
if redis.call('ZCARD', KEYS[1]) >= limit then return 0 end
redis.call('ZADD', KEYS[1], string.format('%.0f', now + ttl), ARGV[3])
if redis.call('PTTL', KEYS[1]) < ttl then
  redis.call('PEXPIRE', KEYS[1], string.format('%.0f', ttl))
end
return 1
"""

# Everything that means "Redis cannot answer now": connection, timeout, OOM, read-only replica.
REDIS_DOWN = (RedisError, OSError)


class RedisLimiter:
    backend = "redis"
    policy_ok = "global limits shared through Redis"
    policy_degraded = "local limits while Redis is unreachable"

    def __init__(
        self,
        url: str,
        *,
        namespace: str = "alttext",
        socket_timeout_s: float = 0.5,
        max_connections: int = 64,
        retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        # A blocking pool: a burst waits briefly for a connection instead of failing with
        # MaxConnectionsError, which the fallback would mistake for an outage.
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=max_connections,
            timeout=max(1.0, 4 * socket_timeout_s),
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            # redis-py retries 3x with backoff by default: seconds of stall per request when
            # Redis is down. The local fallback is the retry.
            retry=Retry(NoBackoff(), 0),
        )
        self._redis = Redis.from_pool(pool)
        self._ns = namespace
        self._retry_interval_s = retry_interval_s
        self._clock = clock
        self._local = MemoryLimiter(clock=clock)
        self._hit_script = self._redis.register_script(HIT_LUA)
        self._acquire_script = self._redis.register_script(ACQUIRE_LUA)
        self._down = False
        self._next_probe = 0.0

    def rate_key(self, key: str) -> str:
        return f"{self._ns}:rl:{key}"

    def slot_key(self, key: str) -> str:
        return f"{self._ns}:cc:{key}"

    @property
    def degraded(self) -> bool:
        return self._down

    async def hit(self, key: str, limit: int, window_s: float = 60) -> RateDecision:
        check_args(limit, window_s)
        if self._use_local():
            return await self._local.hit(key, limit, window_s)
        try:
            allowed, remaining, reset = await self._hit_script(
                keys=[self.rate_key(key)], args=[limit, int(window_s * US)]
            )
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            return await self._local.hit(key, limit, window_s)
        self._mark_up()
        return decision(bool(allowed), limit, int(remaining), int(reset))

    async def acquire(self, key: str, limit: int, *, ttl_s: float = 300) -> str | None:
        check_args(limit, ttl_s)
        if self._use_local():
            return await self._local.acquire(key, limit, ttl_s=ttl_s)
        token = new_token()
        try:
            got = await self._acquire_script(
                keys=[self.slot_key(key)], args=[limit, max(1, round(ttl_s * 1000)), token]
            )
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            return await self._local.acquire(key, limit, ttl_s=ttl_s)
        self._mark_up()
        return token if int(got) == 1 else None

    async def release(self, key: str, token: str) -> None:
        if token.startswith(LOCAL_SLOT_PREFIX):
            await self._local.release(key, token)
            return
        try:
            await self._redis.zrem(self.slot_key(key), token)
        except REDIS_DOWN as exc:
            # The slot expires on its own after its ttl; nothing else to do.
            self._mark_down(exc)

    async def status(self) -> dict[str, Any]:
        if not self._use_local():
            try:
                await self._redis.ping()
            except REDIS_DOWN as exc:
                self._mark_down(exc)
            else:
                self._mark_up()
        return {
            "backend": self.backend,
            "status": "degraded" if self._down else "ok",
            "policy": self.policy_degraded if self._down else self.policy_ok,
        }

    async def aclose(self) -> None:
        await self._redis.aclose()
        await self._local.aclose()

    def _use_local(self) -> bool:
        """While down, answer locally; once per interval let this caller probe Redis."""
        if not self._down:
            return False
        now = self._clock()
        if now < self._next_probe:
            return True
        # Push the next probe out before awaiting, so concurrent requests stay local instead
        # of all waiting on a possibly dead socket.
        self._next_probe = now + self._retry_interval_s
        return False

    def _mark_down(self, exc: BaseException) -> None:
        self._next_probe = self._clock() + self._retry_interval_s
        if self._down:
            return
        self._down = True
        log.warning(
            "Redis unreachable (%s); rate limits and concurrency caps now apply per process "
            "until it is back; retrying every %.0f s",
            type(exc).__name__,
            self._retry_interval_s,
        )

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis reachable again; global rate limits restored")
