"""Two OS processes sharing one Redis admit exactly the limit between them."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from pathlib import Path

import pytest
from redis.asyncio import Redis

REDIS_URL = os.environ.get("ALTTEXT_TEST_REDIS_URL")
pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(not REDIS_URL, reason="ALTTEXT_TEST_REDIS_URL is not set"),
]
SRC = str(Path(__file__).resolve().parents[2] / "src")

# Each worker waits at a Redis barrier so both fire at the same moment, then sends 150 hits
# (limit 100 across both) and 8 slot requests (limit 5 across both), 15 at a time.
WORKER = """
import asyncio, sys
from redis.asyncio import Redis
from alttext.usage.limits_redis import RedisLimiter

async def main(url: str, prefix: str) -> None:
    raw = Redis.from_url(url)
    lim = RedisLimiter(url, socket_timeout_s=5)
    await lim.status()
    await raw.incr(f"alttext:barrier:{prefix}")
    for _ in range(2000):
        if int(await raw.get(f"alttext:barrier:{prefix}") or 0) >= 2:
            break
        await asyncio.sleep(0.01)
    allowed = 0
    for _ in range(10):
        ds = await asyncio.gather(*(lim.hit(f"{prefix}:k", 100, 3600) for _ in range(15)))
        allowed += sum(d.allowed for d in ds)
    slots = await asyncio.gather(*(lim.acquire(f"{prefix}:acct", 5) for _ in range(8)))
    print(allowed, sum(s is not None for s in slots), int(lim.degraded))
    await lim.aclose()
    await raw.aclose()

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _run_worker(prefix: str) -> tuple[int, int, int]:
    assert REDIS_URL
    env = {**os.environ, "PYTHONPATH": SRC + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        WORKER,
        REDIS_URL,
        prefix,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=60)
    assert proc.returncode == 0, err.decode()
    allowed, slots, degraded = (int(x) for x in out.split())
    return allowed, slots, degraded


async def test_two_processes_share_one_limit() -> None:
    assert REDIS_URL
    raw = Redis.from_url(REDIS_URL)
    await raw.ping()  # set but down is a failure, not a skip
    prefix = f"test-{uuid.uuid4().hex}"
    try:
        results = await asyncio.gather(_run_worker(prefix), _run_worker(prefix))
    finally:
        keys = [k async for k in raw.scan_iter(match=f"alttext:*:{prefix}*")]
        if keys:
            await raw.delete(*keys)
        await raw.aclose()
    assert [r[2] for r in results] == [0, 0], "a worker fell back to local limits"
    assert sum(r[0] for r in results) == 100
    assert sum(r[1] for r in results) == 5
