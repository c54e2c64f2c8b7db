"""Rate limits (requests per key per window) and concurrency caps (generations in flight).

Two backends with the same semantics: :class:`MemoryLimiter` (this module; the embedded
default, limits hold per process) and :class:`~alttext.usage.limits_redis.RedisLimiter` (one
Lua script per decision, shared by every API process). :func:`alttext.usage.backends.build_limiter`
picks one.

Rate algorithm: GCRA, the generic cell rate algorithm (a token bucket kept as one timestamp).
With ``limit`` requests per ``window_s`` the emission interval is ``T = window_s / limit`` and
the bucket holds ``limit`` cells. The state per key is the theoretical arrival time ``tat``; a
request at ``now`` is allowed when ``max(tat, now) + T - now <= limit * T`` and then advances
``tat`` by ``T``. So an idle client may send ``limit`` requests at once, after which one more
is allowed every ``T`` seconds: the long-run rate is exactly ``limit`` per window, with no
fixed-window edge where 2x the limit passes in a moment. State is O(1) per key, and
``remaining`` and ``Retry-After`` follow exactly from ``tat``. All arithmetic is in integer
microseconds so both backends (Python ints, Lua doubles below 2**53) agree to the microsecond.

Header semantics (IETF draft-ietf-httpapi-ratelimit-headers), whole seconds rounded up:
- ``limit``: the quota, ``remaining``: requests that would be allowed right now.
- ``reset_s``: while ``remaining > 0``, seconds until the full quota is back; at
  ``remaining == 0``, seconds until the next request is allowed (the useful number then).
- ``retry_after_s``: on a denial, seconds until a retry is allowed (== ``reset_s``); else None.

Concurrency slots: per key a set of ``token -> expiry``. ``acquire`` drops expired slots, then
adds one if fewer than ``limit`` are held. A slot expires after ``ttl_s`` so a process that
crashed while holding one cannot leak it forever; ``ttl_s`` must exceed the longest generation.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = [
    "LOCAL_SLOT_PREFIX",
    "Limiter",
    "MemoryLimiter",
    "RateDecision",
    "gcra",
]

US = 1_000_000
LOCAL_SLOT_PREFIX = "local:"
# Expired state is purged at most this often; between sweeps it is merely dead weight.
SWEEP_INTERVAL_S = 10.0


@dataclass(frozen=True)
class RateDecision:
    allowed: bool
    limit: int
    remaining: int
    reset_s: int
    retry_after_s: int | None

    def headers(self) -> dict[str, str]:
        """The RateLimit-* headers for this decision, plus Retry-After on a denial."""
        out = {
            "RateLimit-Limit": str(self.limit),
            "RateLimit-Remaining": str(self.remaining),
            "RateLimit-Reset": str(self.reset_s),
        }
        if self.retry_after_s is not None:
            out["Retry-After"] = str(self.retry_after_s)
        return out


@runtime_checkable
class Limiter(Protocol):
    backend: str  # "memory" | "redis"

    async def hit(self, key: str, limit: int, window_s: float = 60) -> RateDecision:
        """Count one request against ``key``; ``limit`` requests per ``window_s`` seconds."""
        ...

    async def acquire(self, key: str, limit: int, *, ttl_s: float = 300) -> str | None:
        """Take one of ``limit`` slots for ``key``: a token for :meth:`release`, None if full."""
        ...

    async def release(self, key: str, token: str) -> None:
        """Give a slot back; unknown or expired tokens are ignored."""
        ...

    async def status(self) -> dict[str, Any]:
        """For /readyz: ``{"backend", "status": "ok" | "degraded", "policy"}``."""
        ...

    async def aclose(self) -> None: ...


def check_args(limit: int, period_s: float) -> None:
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    if not period_s > 0:
        raise ValueError(f"window/ttl must be positive, got {period_s}")


def gcra(tat: int, now: int, limit: int, window_us: int) -> tuple[bool, int, int, int]:
    """One GCRA step in integer microseconds: ``(allowed, new_tat, remaining, reset_us)``.

    ``reset_us`` follows the header semantics of the module docstring. The Lua script in
    limits_redis.py is a line-by-line copy of this function: change both or neither.
    """
    interval = max(1, window_us // limit)
    capacity = interval * limit
    tat = max(tat, now)
    new_tat = tat + interval
    if new_tat - now > capacity:
        return False, tat, 0, tat + interval - capacity - now
    remaining = (capacity - (new_tat - now)) // interval
    reset = new_tat - now if remaining > 0 else new_tat + interval - capacity - now
    return True, new_tat, remaining, reset


def decision(allowed: bool, limit: int, remaining: int, reset_us: int) -> RateDecision:
    reset_s = math.ceil(reset_us / US)
    return RateDecision(
        allowed=allowed,
        limit=limit,
        remaining=remaining,
        reset_s=reset_s,
        retry_after_s=None if allowed else max(1, reset_s),
    )


def new_token() -> str:
    return secrets.token_hex(12)


class MemoryLimiter:
    """In-process backend. Every method runs without awaiting, so it is atomic under asyncio."""

    backend = "memory"
    policy = "in-process limits (each API process counts on its own)"

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        # The clock is injectable so tests can move time instead of sleeping.
        self._clock = clock
        self._tats: dict[str, int] = {}
        self._slots: dict[str, dict[str, float]] = {}
        self._last_sweep = clock()

    async def hit(self, key: str, limit: int, window_s: float = 60) -> RateDecision:
        check_args(limit, window_s)
        now_s = self._clock()
        self._maybe_sweep(now_s)
        now = int(now_s * US)
        allowed, new_tat, remaining, reset = gcra(
            self._tats.get(key, 0), now, limit, int(window_s * US)
        )
        if allowed:
            self._tats[key] = new_tat
        return decision(allowed, limit, remaining, reset)

    async def acquire(self, key: str, limit: int, *, ttl_s: float = 300) -> str | None:
        check_args(limit, ttl_s)
        now = self._clock()
        self._maybe_sweep(now)
        held = self._slots.setdefault(key, {})
        for token in [t for t, expiry in held.items() if expiry <= now]:
            del held[token]
        if len(held) >= limit:
            return None
        token = LOCAL_SLOT_PREFIX + new_token()
        held[token] = now + ttl_s
        return token

    async def release(self, key: str, token: str) -> None:
        held = self._slots.get(key)
        if held is not None:
            held.pop(token, None)
            if not held:
                del self._slots[key]

    async def status(self) -> dict[str, Any]:
        return {"backend": self.backend, "status": "ok", "policy": self.policy}

    async def aclose(self) -> None:
        self._tats.clear()
        self._slots.clear()

    def _maybe_sweep(self, now: float) -> None:
        # A key whose tat has passed is indistinguishable from an absent one; dropping such
        # keys keeps memory bounded by the keys active in the last window.
        if abs(now - self._last_sweep) < SWEEP_INTERVAL_S:
            return
        self._last_sweep = now
        now_us = int(now * US)
        self._tats = {k: tat for k, tat in self._tats.items() if tat > now_us}
        for key in list(self._slots):
            live = {t: exp for t, exp in self._slots[key].items() if exp > now}
            if live:
                self._slots[key] = live
            else:
                del self._slots[key]
