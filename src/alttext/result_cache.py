"""The result cache: alt text already written for the same prepared image and options.

**What it holds** (docs/privacy.md, ``privacy.inventory.RESULT_CACHE``): per account, under a
key that hashes the prepared image's SHA-256 (never the image), every option that shapes the
answer, the model asked for, the deployment's provider and model chain and the prompt version
(:func:`result_key`), the answer's text fields (:data:`CACHED_FIELDS`): alt texts, role,
decorative, long description, text read in the image, language, review flag and reasons, the
model that answered, the image's format and size. Never image bytes, tokens or costs.

**Where**: in this process's memory (an LRU bounded in entries and characters), or in Redis when
``ALTTEXT_REDIS_URL`` is set (JSON strings with a ``PX`` expiry under
``alttext:cache:<account_id>:<key>``, so :meth:`ResultCache.clear_account` finds an account's
entries with SCAN). Entries live ``ALTTEXT_CACHE_TTL_S`` (default 24 h); 0 turns the cache and
single flight off.

**Redis down**: the cache is bypassed — a lookup is a miss, a store is skipped, a claim is
granted — with one warning per outage; Redis is probed again every few seconds. A caller never
sees an error from the cache.

**Single flight** (:meth:`ResultCache.flight`): identical concurrent requests (same account and
key) share one model call. In a process, the first becomes the *leader* and the others wait on
its outcome: its description (they answer it as a cache hit), the model's error (they fail with
the same error: asking again at once would only fail again, one at a time), or nothing — the
leader stopped for a reason of its own (cancelled, out of credits, rate-limited, superseded) —
and then they start over: look up the cache again, and one of them leads. Across processes
with Redis, the leader first claims ``alttext:cachelock:<account_id>:<key>`` with ``SET NX PX``;
a process that finds it claimed polls the cache until the entry appears (a hit) or the claim is
gone (the other leader failed: it claims and runs itself). Errors are not shared across
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import hashlib
import json
import logging
import secrets
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError

from alttext.config import Settings
from alttext.describe.engine import cache_key
from alttext.describe.errors import AppError
from alttext.describe.types import DescribeOptions, Description, ImageInfo, Timing, Usage

log = logging.getLogger("alttext.result_cache")

# The Description fields a cache entry keeps (the privacy inventory lists exactly these).
CACHED_FIELDS: tuple[str, ...] = (
    "alt_text",
    "alt_texts",
    "decorative",
    "role",
    "language",
    "long_description",
    "text_in_image",
    "needs_review",
    "review_reasons",
    "model",
    "image",
    "cache_key",
)
_VERSION = 1
DEFAULT_MAX_ENTRIES = 10_000
DEFAULT_MAX_CHARS = 32_000_000  # about 64 MB of str at worst
POLL_S = 0.1  # how often a process polls while another process leads
REDIS_DOWN = (RedisError, OSError)
_UNLOCK_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# A claim granted without Redis (no Redis, Redis down, or the cache off): nothing to release.
LOCAL_CLAIM = "local"


def result_key(
    image_sha256: str, options: DescribeOptions, *, provider: str, models: Sequence[str]
) -> str:
    """The cache key: the engine's :func:`cache_key` (prepared image digest, every option,
    the prompt version) plus the deployment's provider and model chain, which answer a request
    that names no model. Never the image; the account scopes it separately."""
    deployment = f"{provider}\n{','.join(models)}"
    return hashlib.sha256(f"{cache_key(image_sha256, options)}\n{deployment}".encode()).hexdigest()


def encode(description: Description) -> str:
    """A cache value: the text fields of :data:`CACHED_FIELDS` as JSON, nothing else."""
    d = description
    value: dict[str, Any] = {
        "v": _VERSION,
        "alt_text": d.alt_text,
        "alt_texts": dict(d.alt_texts),
        "decorative": d.decorative,
        "role": d.role,
        "language": d.language,
        "long_description": d.long_description,
        "text_in_image": d.text_in_image,
        "needs_review": d.needs_review,
        "review_reasons": list(d.review_reasons),
        "model": d.model,
        "image": {
            "width": d.image.width,
            "height": d.image.height,
            "format": d.image.format,
            "sent_width": d.image.sent_width,
            "sent_height": d.image.sent_height,
        },
        "cache_key": d.cache_key,
    }
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def decode(raw: str | bytes) -> Description | None:
    """A description from a cache value; None for anything unreadable (a miss, not an error).
    Usage and timing are zero: a hit costs no tokens and no model time."""
    try:
        v = json.loads(raw)
        if not isinstance(v, dict) or v.get("v") != _VERSION:
            return None
        image = v["image"]
        return Description(
            alt_text=str(v["alt_text"]),
            alt_texts={str(k): str(t) for k, t in v["alt_texts"].items()},
            decorative=bool(v["decorative"]),
            role=v["role"],
            language=str(v["language"]),
            long_description=v["long_description"],
            text_in_image=v["text_in_image"],
            needs_review=bool(v["needs_review"]),
            review_reasons=[str(r) for r in v["review_reasons"]],
            model=str(v["model"]),
            image=ImageInfo(
                width=int(image["width"]),
                height=int(image["height"]),
                format=str(image["format"]),
                sent_width=int(image["sent_width"]),
                sent_height=int(image["sent_height"]),
            ),
            usage=Usage(input_tokens=0, output_tokens=0, upstream_cost_usd=0.0),
            timing=Timing(prepare_ms=0, upstream_ms=0),
            cache_key=str(v.get("cache_key") or ""),
            attempts=0,
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None


@dataclass
class Flight:
    """One request's place in the single flight of its key.

    ``hit`` is set when the answer is already there (the cache, or another request's model
    call): answer it, free. Otherwise this request leads: run the model, then :meth:`store` the
    description once its charge is committed; call :meth:`share` with a model error so the
    waiters fail with it too (any other failure lets them start over)."""

    hit: Description | None = None
    _cache: ResultCache | None = None
    _account_id: str = ""
    _key: str = ""
    _future: asyncio.Future[object] | None = None
    _token: str | None = None
    _shared: AppError | None = field(default=None, repr=False)

    @property
    def leader(self) -> bool:
        return self.hit is None

    def share(self, error: AppError) -> None:
        self._shared = error

    async def store(self, description: Description) -> None:
        if self._cache is not None:
            await self._cache.put(self._account_id, self._key, description)
        self._resolve(description)

    def _resolve(self, outcome: object) -> None:
        if self._future is not None and not self._future.done():
            self._future.set_result(outcome)


class ResultCache:
    """The interface and the single flight; a backend supplies storage and the claim."""

    backend: ClassVar[str] = "none"

    def __init__(self, ttl_s: float, *, poll_s: float = POLL_S) -> None:
        self.ttl_s = ttl_s
        self.poll_s = poll_s
        self._flights: dict[tuple[str, str], asyncio.Future[object]] = {}

    @property
    def enabled(self) -> bool:
        return self.ttl_s > 0

    # -- storage (the backends) -------------------------------------------------------------

    async def _load(self, account_id: str, key: str) -> str | None:
        raise NotImplementedError

    async def _save(self, account_id: str, key: str, value: str) -> None:
        raise NotImplementedError

    async def _claim(self, account_id: str, key: str) -> str | None:
        """A token when this process may run the key's model call; None while another has it."""
        return LOCAL_CLAIM

    async def _unclaim(self, account_id: str, key: str, token: str) -> None:
        return None

    async def clear_account(self, account_id: str) -> int:
        """Delete every entry of the account (erasure); the number deleted."""
        raise NotImplementedError

    async def stored(self, account_id: str) -> list[str]:
        """The account's raw values, as stored (for tests and inspection)."""
        raise NotImplementedError

    async def aclose(self) -> None:
        return None

    # -- the interface -----------------------------------------------------------------------

    async def get(self, account_id: str, key: str) -> Description | None:
        if not self.enabled:
            return None
        raw = await self._load(account_id, key)
        return decode(raw) if raw is not None else None

    async def put(self, account_id: str, key: str, description: Description) -> None:
        if self.enabled:
            await self._save(account_id, key, encode(description))

    @contextlib.asynccontextmanager
    async def flight(self, account_id: str, key: str) -> AsyncIterator[Flight]:
        """Join the single flight of ``key`` for the account (see the module's docstring).

        Raises the leader's shared model error for a waiter. The block's own exceptions pass
        through; leaving it releases the claim and tells the waiters how it went."""
        flight = await self._join(account_id, key)
        try:
            yield flight
        except BaseException as exc:
            flight._resolve(exc if exc is flight._shared else None)
            raise
        finally:
            flight._resolve(None)  # left without storing: the waiters start over
            await self._leave(flight)

    async def _join(self, account_id: str, key: str) -> Flight:
        if not self.enabled:
            return Flight()
        name = (account_id, key)
        while True:
            hit = await self.get(account_id, key)
            if hit is not None:
                return Flight(hit=hit)
            running = self._flights.get(name)
            if running is None:
                break
            outcome = await asyncio.shield(running)
            if isinstance(outcome, Description):
                return Flight(hit=outcome)
            if isinstance(outcome, AppError):
                raise _copy(outcome)
            # The leader stopped for a reason of its own: look again, and perhaps lead.
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._flights[name] = future
        flight = Flight(_cache=self, _account_id=account_id, _key=key, _future=future)
        try:
            while (token := await self._claim(account_id, key)) is None:
                await asyncio.sleep(self.poll_s)  # another process leads: its answer is a hit
                hit = await self.get(account_id, key)
                if hit is not None:
                    flight._resolve(hit)
                    flight.hit = hit
                    break
            else:
                flight._token = token
        except BaseException:
            flight._resolve(None)
            await self._leave(flight)
            raise
        return flight

    async def _leave(self, flight: Flight) -> None:
        name = (flight._account_id, flight._key)
        if flight._future is not None and self._flights.get(name) is flight._future:
            del self._flights[name]
        token, flight._token = flight._token, None
        if token is not None and token != LOCAL_CLAIM:
            await asyncio.shield(self._unclaim(flight._account_id, flight._key, token))


def _copy(error: AppError) -> AppError:
    """A waiter's own instance of the leader's error (tracebacks are per raise)."""
    try:
        return copy.copy(error)
    except Exception:  # an error class that does not copy: share the instance
        return error


class MemoryResultCache(ResultCache):
    """In this process: an LRU bounded in entries and in characters, each entry with the TTL."""

    backend = "memory"

    def __init__(
        self,
        ttl_s: float,
        *,
        max_entries: int = DEFAULT_MAX_ENTRIES,
        max_chars: int = DEFAULT_MAX_CHARS,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(ttl_s, poll_s=poll_s)
        self.max_entries = max_entries
        self.max_chars = max_chars
        self._clock = clock
        self._entries: OrderedDict[tuple[str, str], tuple[float, str]] = OrderedDict()
        self._chars = 0

    def __len__(self) -> int:
        return len(self._entries)

    async def _load(self, account_id: str, key: str) -> str | None:
        name = (account_id, key)
        entry = self._entries.get(name)
        if entry is None:
            return None
        if entry[0] <= self._clock():
            self._drop(name)
            return None
        self._entries.move_to_end(name)
        return entry[1]

    async def _save(self, account_id: str, key: str, value: str) -> None:
        name = (account_id, key)
        if name in self._entries:
            self._drop(name)
        if len(value) > self.max_chars:
            return
        self._entries[name] = (self._clock() + self.ttl_s, value)
        self._chars += len(value)
        while len(self._entries) > self.max_entries or self._chars > self.max_chars:
            self._drop(next(iter(self._entries)))

    def _drop(self, name: tuple[str, str]) -> None:
        _, value = self._entries.pop(name)
        self._chars -= len(value)

    async def clear_account(self, account_id: str) -> int:
        names = [name for name in self._entries if name[0] == account_id]
        for name in names:
            self._drop(name)
        return len(names)

    async def stored(self, account_id: str) -> list[str]:
        return [value for (acct, _), (_, value) in self._entries.items() if acct == account_id]


class RedisResultCache(ResultCache):
    """In Redis, shared by every process; bypassed (never an error) while Redis is down."""

    backend = "redis"

    def __init__(
        self,
        url: str,
        ttl_s: float,
        *,
        lock_ttl_s: float = 65.0,
        namespace: str = "alttext",
        socket_timeout_s: float = 0.5,
        retry_interval_s: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
        poll_s: float = POLL_S,
    ) -> None:
        super().__init__(ttl_s, poll_s=poll_s)
        pool = BlockingConnectionPool.from_url(
            url,
            max_connections=64,
            timeout=max(1.0, 4 * socket_timeout_s),
            socket_timeout=socket_timeout_s,
            socket_connect_timeout=socket_timeout_s,
            retry=Retry(NoBackoff(), 0),  # the bypass is the retry
        )
        self._redis = Redis.from_pool(pool)
        self._unlock = self._redis.register_script(_UNLOCK_LUA)
        self._ns = namespace
        self.lock_ttl_s = lock_ttl_s
        self._retry_interval_s = retry_interval_s
        self._clock = clock
        self._down = False
        self._next_probe = 0.0

    def entry_key(self, account_id: str, key: str) -> str:
        return f"{self._ns}:cache:{account_id}:{key}"

    def lock_key(self, account_id: str, key: str) -> str:
        return f"{self._ns}:cachelock:{account_id}:{key}"

    def _pattern(self, account_id: str) -> str:
        escaped = "".join(f"\\{c}" if c in "*?[]\\" else c for c in account_id)
        return f"{self._ns}:cache:{escaped}:*"

    @property
    def degraded(self) -> bool:
        return self._down

    async def _load(self, account_id: str, key: str) -> str | None:
        if self._bypass():
            return None
        try:
            raw = await self._redis.get(self.entry_key(account_id, key))
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            return None
        self._mark_up()
        return raw.decode() if isinstance(raw, bytes) else raw

    async def _save(self, account_id: str, key: str, value: str) -> None:
        if self._bypass():
            return
        try:
            await self._redis.set(
                self.entry_key(account_id, key), value, px=max(1, int(self.ttl_s * 1000))
            )
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            return
        self._mark_up()

    async def _claim(self, account_id: str, key: str) -> str | None:
        if self._bypass():
            return LOCAL_CLAIM
        token = secrets.token_hex(8)
        try:
            won = await self._redis.set(
                self.lock_key(account_id, key),
                token,
                nx=True,
                px=max(1, int(self.lock_ttl_s * 1000)),
            )
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            return LOCAL_CLAIM
        self._mark_up()
        return token if won else None

    async def _unclaim(self, account_id: str, key: str, token: str) -> None:
        try:
            await self._unlock(keys=[self.lock_key(account_id, key)], args=[token])
        except REDIS_DOWN as exc:
            self._mark_down(exc)  # the claim expires on its own

    async def _keys(self, account_id: str) -> list[Any]:
        return [k async for k in self._redis.scan_iter(match=self._pattern(account_id), count=500)]

    async def clear_account(self, account_id: str) -> int:
        """SCAN + DEL of ``alttext:cache:<account_id>:*``. With Redis down nothing is deleted
        (logged): the entries then expire within the TTL, and no request can reach them, as
        an erased account's id never comes back."""
        try:
            keys = await self._keys(account_id)
            for start in range(0, len(keys), 500):
                await self._redis.delete(*keys[start : start + 500])
        except REDIS_DOWN as exc:
            self._mark_down(exc)
            log.warning("cached results of an erased account left to expire (Redis down)")
            return 0
        return len(keys)

    async def stored(self, account_id: str) -> list[str]:
        values = [await self._redis.get(k) for k in await self._keys(account_id)]
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values if v is not None]

    async def aclose(self) -> None:
        await self._redis.aclose()

    def _bypass(self) -> bool:
        """While down, skip Redis; once per interval let one caller probe it."""
        if not self._down:
            return False
        now = self._clock()
        if now < self._next_probe:
            return True
        self._next_probe = now + self._retry_interval_s
        return False

    def _mark_down(self, exc: BaseException) -> None:
        self._next_probe = self._clock() + self._retry_interval_s
        if self._down:
            return
        self._down = True
        log.warning(
            "Redis unreachable (%s); the result cache is bypassed until it is back "
            "(every request runs the model); retrying every %.0f s",
            type(exc).__name__,
            self._retry_interval_s,
        )

    def _mark_up(self) -> None:
        if self._down:
            self._down = False
            log.info("Redis reachable again; the result cache is back")


def build_result_cache(settings: Settings) -> ResultCache:
    """Redis when ``ALTTEXT_REDIS_URL`` is set (building does not connect), else in-process."""
    if settings.redis_url:
        return RedisResultCache(
            settings.redis_url,
            settings.cache_ttl_s,
            lock_ttl_s=settings.upstream_budget_s + 5,
        )
    return MemoryResultCache(settings.cache_ttl_s)


__all__ = [
    "CACHED_FIELDS",
    "Flight",
    "MemoryResultCache",
    "RedisResultCache",
    "ResultCache",
    "build_result_cache",
    "decode",
    "encode",
    "result_key",
]
