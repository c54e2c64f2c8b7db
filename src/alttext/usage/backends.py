"""Choosing the rate-limit backend from settings (kept apart so neither backend imports the
other: the Redis one builds on the shared GCRA of :mod:`alttext.usage.limits`)."""

from __future__ import annotations

from alttext.usage.limits import Limiter, MemoryLimiter
from alttext.usage.limits_redis import RedisLimiter


def build_limiter(redis_url: str | None, *, namespace: str = "alttext") -> Limiter:
    """The Redis backend when a URL is configured, else the in-process one.

    Building does not connect: an unreachable Redis shows up as ``status() == degraded``.
    """
    if not redis_url:
        return MemoryLimiter()
    return RedisLimiter(redis_url, namespace=namespace)
