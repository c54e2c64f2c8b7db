"""Shared by the jobs tests: images to serve, settings that make jobs quick, waiting."""

from __future__ import annotations

import asyncio
import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import func, select

from alttext.billing.models import CreditEntry

# Jobs in tests: a sweep every 0.2 s, short leases, no politeness delay.
FAST_JOBS: dict[str, Any] = {
    "allow_private_urls": True,
    "job_sweep_s": 0.2,
    "job_lease_s": 3.0,
    "crawl_delay_s": 0.0,
}


def png(seed: int = 0, size: tuple[int, int] = (64, 48)) -> bytes:
    colour = ((seed * 37) % 256, (seed * 91) % 256, (seed * 53) % 256)
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


async def wait_for(
    probe: Callable[[], Awaitable[bool]], *, timeout: float = 60.0, step: float = 0.1
) -> None:
    deadline = time.monotonic() + timeout
    while not await probe():
        assert time.monotonic() < deadline, "timed out waiting"
        await asyncio.sleep(step)


async def wait_status(
    client: httpx.AsyncClient,
    job_id: str,
    headers: dict[str, str],
    statuses: tuple[str, ...],
    timeout: float = 60.0,
) -> dict[str, Any]:
    seen: dict[str, Any] = {}

    async def probe() -> bool:
        nonlocal seen
        response = await client.get(f"/v1/jobs/{job_id}", headers=headers)
        assert response.status_code == 200, response.text
        seen = response.json()
        return bool(seen["status"] in statuses)

    try:
        await wait_for(probe, timeout=timeout)
    except AssertionError:
        raise AssertionError(f"job never reached {statuses}: {seen}") from None
    return seen


async def ledger_sum(sessions: Any, account_id: str) -> int:
    async with sessions() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(CreditEntry.credits), 0)).where(
                CreditEntry.account_id == account_id
            )
        )
    return int(total or 0)
