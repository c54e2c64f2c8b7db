"""The memory budget's holds: a hold shrinks to what its request still keeps once decoded.
(Leases and the budget under real requests: tests/http/test_body_budget.py.)"""

from __future__ import annotations

import asyncio

from alttext.inflight import EXPANSION, InflightBudget

MB = 1024 * 1024


async def test_a_shrunk_hold_gives_its_room_to_a_waiting_hold_at_once() -> None:
    budget = InflightBudget(8 * MB, wait_s=2.0)  # a hold costs at most 4 MB (the other half)
    body = budget.lease()
    body.grow(2 * MB)  # a request body being read
    decoded, done = asyncio.Event(), asyncio.Event()
    second_in = asyncio.Event()

    async def first() -> None:
        async with budget.hold(MB) as held:  # 4 MB: 6 of 8 in use
            await decoded.wait()
            held.shrink(MB // 2)
            await done.wait()

    async def second() -> None:
        async with budget.hold(MB):  # 4 MB more: fits only once the first shrank
            second_in.set()
            await done.wait()

    one = asyncio.create_task(first())
    await asyncio.sleep(0)
    assert budget.used == 2 * MB + EXPANSION * MB
    two = asyncio.create_task(second())
    await asyncio.sleep(0.01)
    assert not second_in.is_set()  # waits for room
    decoded.set()
    await asyncio.wait_for(second_in.wait(), 1)
    assert budget.used == 2 * MB + MB // 2 + EXPANSION * MB
    done.set()
    await asyncio.gather(one, two)
    body.release()
    assert budget.used == 0  # the first gave back only what it kept


async def test_shrinking_never_grows_a_hold() -> None:
    budget = InflightBudget(16 * MB)
    async with budget.hold(MB) as held:
        held.shrink(100 * MB)
        assert budget.used == EXPANSION * MB
        held.shrink(-1)
        assert budget.used == 0
    assert budget.used == 0
