"""Periodic jobs: not at start-up, then at their interval, surviving failures."""

from __future__ import annotations

import asyncio

import pytest

from alttext import background
from alttext.background import periodic


async def test_jobs_wait_before_the_first_run_then_repeat_and_survive_errors(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(background, "MAX_FIRST_DELAY_S", 0.2)
    runs: list[str] = []

    async def ok() -> None:
        runs.append("ok")

    async def broken() -> None:
        runs.append("broken")
        raise RuntimeError("database went away")

    async with periodic([("ok", 0.05, ok), ("broken", 0.05, broken)]):
        await asyncio.sleep(0.02)
        assert runs == []  # nothing at start-up
        await asyncio.sleep(0.4)
    assert runs.count("ok") >= 3
    assert runs.count("broken") >= 3  # an error does not stop the job
    count = len(runs)
    await asyncio.sleep(0.1)
    assert len(runs) == count  # stopped with the block
