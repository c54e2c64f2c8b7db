"""Periodic tasks: not at start-up, then at their interval, surviving failures; a cluster-wide
task runs once per cluster when the processes share Redis."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from alttext import scheduler
from alttext.scheduler import LocalClaims, PeriodicTask, RedisClaims, running

REDIS_URL = os.environ.get("ALTTEXT_TEST_REDIS_URL")


async def test_tasks_wait_before_the_first_run_then_repeat_and_survive_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduler, "MAX_FIRST_DELAY_S", 0.2)
    runs: list[str] = []

    async def ok() -> None:
        runs.append("ok")

    async def broken() -> None:
        runs.append("broken")
        raise RuntimeError("database went away")

    tasks = [PeriodicTask("ok", 0.05, ok), PeriodicTask("broken", 0.05, broken)]
    async with running(tasks, LocalClaims()):
        await asyncio.sleep(0.02)
        assert runs == []  # nothing at start-up
        await asyncio.sleep(0.4)
    assert runs.count("ok") >= 3
    assert runs.count("broken") >= 3  # an error does not stop the task
    count = len(runs)
    await asyncio.sleep(0.1)
    assert len(runs) == count  # stopped with the block


class _Shared:
    """Two processes' claims on one cluster, without Redis: the first claim of a tick wins."""

    def __init__(self) -> None:
        self.held: dict[str, float] = {}

    def claims(self) -> scheduler.TickClaims:
        shared = self

        class Claims(LocalClaims):
            async def claim(self, name: str, ttl_s: float) -> bool:
                now = asyncio.get_running_loop().time()
                if shared.held.get(name, 0.0) > now:
                    return False
                shared.held[name] = now + ttl_s
                return True

        return Claims()


async def test_cluster_tasks_run_once_per_tick_and_per_process_tasks_everywhere(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(scheduler, "MAX_FIRST_DELAY_S", 0.0)
    shared = _Shared()
    runs: list[str] = []

    def tasks(process: str) -> list[PeriodicTask]:
        async def cluster() -> None:
            runs.append(f"cluster:{process}")

        async def local() -> None:
            runs.append(f"local:{process}")

        return [
            PeriodicTask("purge", 0.2, cluster),
            PeriodicTask("flush", 0.2, local, per_process=True),
        ]

    async with running(tasks("a"), shared.claims()), running(tasks("b"), shared.claims()):
        await asyncio.sleep(0.5)
    cluster_runs = [r for r in runs if r.startswith("cluster")]
    local_runs = [r for r in runs if r.startswith("local")]
    # Two processes, about two ticks: each tick ran once in the cluster, not twice.
    assert 1 <= len(cluster_runs) <= 3
    assert {r.split(":")[1] for r in local_runs} == {"a", "b"}
    assert len(local_runs) >= 2 * len(cluster_runs) - 1


@pytest.mark.redis
@pytest.mark.skipif(not REDIS_URL, reason="needs ALTTEXT_TEST_REDIS_URL")
async def test_redis_claims_give_each_tick_to_one_process() -> None:
    assert REDIS_URL is not None
    namespace = f"test-{uuid.uuid4().hex[:8]}"
    a = RedisClaims(REDIS_URL, namespace=namespace)
    b = RedisClaims(REDIS_URL, namespace=namespace)
    try:
        assert await a.claim("purge", 0.3) is True
        assert await b.claim("purge", 0.3) is False
        assert await a.claim("purge", 0.3) is False  # a tick is claimed once, even by its owner
        await asyncio.sleep(0.35)
        assert await b.claim("purge", 0.3) is True
    finally:
        await a.aclose()
        await b.aclose()


async def test_redis_down_runs_the_task_here_rather_than_never() -> None:
    dead = RedisClaims("redis://127.0.0.1:1/0")
    try:
        assert await dead.claim("purge", 1.0) is True
    finally:
        await dead.aclose()
