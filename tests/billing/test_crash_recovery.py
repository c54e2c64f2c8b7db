"""A real service process killed between reserve and settle gives the credit back after restart."""

from __future__ import annotations

import asyncio
import contextlib
import io
import signal
import threading
import time
from typing import Any

import httpx
from PIL import Image
from sqlalchemy import select

from alttext.accounts.service import create_account, create_key
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import create_engine, session_factory, transaction
from tests.fakes.openrouter import Slow
from tests.processes import free_port, service_process


async def state(database_url: str, account_id: str) -> tuple[list[tuple[str, int]], list[str]]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            entries = await session.execute(
                select(CreditEntry.kind, CreditEntry.credits)
                .where(CreditEntry.account_id == account_id)
                .order_by(CreditEntry.created_at)
            )
            held = await session.execute(
                select(CreditReservation.state).where(CreditReservation.account_id == account_id)
            )
            return [(k, int(c)) for k, c in entries], list(held.scalars())
    finally:
        await engine.dispose()


async def wait_for(predicate: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not await predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.2)


async def test_sigkill_between_reserve_and_settle_releases_once(
    database_url: str, fake_openrouter: Any
) -> None:
    engine = create_engine(database_url)
    async with transaction(session_factory(engine)) as session:
        account = await create_account(session, "crash@example.com")
        await grant_starting_credits(session, account, 10)
        _, secret = await create_key(session, account.id)
    await engine.dispose()

    fake_openrouter.script(Slow(60))  # the model never answers before the kill
    port = free_port()
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake_openrouter.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "ALTTEXT_RESERVATION_TTL_S": "3",
        "ALTTEXT_RESERVATION_SWEEP_S": "0.2",
        "ALTTEXT_LOG_LEVEL": "WARNING",
    }
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buf, format="PNG")

    def send() -> None:
        with contextlib.suppress(httpx.HTTPError):  # the server dies under it
            httpx.post(
                f"http://127.0.0.1:{port}/v1/alt-text",
                headers={"Authorization": f"Bearer {secret}"},
                files={"image": ("a.png", buf.getvalue())},
                timeout=90,
            )

    with service_process(env, port) as proc:
        sender = threading.Thread(target=send, daemon=True)
        sender.start()

        async def reserved() -> bool:
            _, held = await state(database_url, account.id)
            return held == ["held"]

        await wait_for(reserved)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    sender.join(timeout=10)

    entries, held = await state(database_url, account.id)
    assert entries == [("grant", 10), ("usage", -1)]
    assert held == ["held"]

    with service_process(env, port):

        async def released() -> bool:
            _, held_now = await state(database_url, account.id)
            return held_now == ["released"]

        await wait_for(released)
        await asyncio.sleep(1.0)  # more sweeps: nothing may be booked twice
    with service_process(env, port):
        await asyncio.sleep(1.0)

    entries, held = await state(database_url, account.id)
    assert entries == [("grant", 10), ("usage", -1), ("release", 1)]
    assert sum(c for _, c in entries) == 10
    assert held == ["released"]


async def test_a_client_that_disconnects_under_uvicorn_is_not_charged(
    database_url: str, fake_openrouter: Any
) -> None:
    engine = create_engine(database_url)
    async with transaction(session_factory(engine)) as session:
        account = await create_account(session, "gone@example.com")
        await grant_starting_credits(session, account, 10)
        _, secret = await create_key(session, account.id)
    await engine.dispose()
    fake_openrouter.script(Slow(3))
    port = free_port()
    env = {
        "ALTTEXT_ENV": "test",
        "ALTTEXT_DATABASE_URL": database_url,
        "ALTTEXT_PROVIDER": "openrouter",
        "ALTTEXT_OPENROUTER_API_KEY": fake_openrouter.api_key,
        "ALTTEXT_OPENROUTER_BASE_URL": fake_openrouter.base_url,
        "ALTTEXT_LOG_LEVEL": "WARNING",
    }
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), "teal").save(buf, format="PNG")
    with service_process(env, port):
        async with httpx.AsyncClient() as client:
            with contextlib.suppress(httpx.TimeoutException):
                await client.post(
                    f"http://127.0.0.1:{port}/v1/alt-text",
                    headers={"Authorization": f"Bearer {secret}"},
                    files={"image": ("a.png", buf.getvalue())},
                    timeout=1.0,  # gives up while the model is still thinking
                )

        async def released() -> bool:
            _, held = await state(database_url, account.id)
            return held == ["released"]

        await wait_for(released, timeout=15)
    entries, _ = await state(database_url, account.id)
    assert entries == [("grant", 10), ("usage", -1), ("release", 1)]
