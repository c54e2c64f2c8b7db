"""A request still running when the shutdown grace runs out: a 503 problem, not charged."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from typing import Any

import httpx
import uvicorn
from PIL import Image
from sqlalchemy import select

from alttext.accounts.models import Account
from alttext.db import create_engine, session_factory
from alttext.http.server import uvicorn_options
from tests.conftest import make_settings, openrouter_settings
from tests.fakes.openrouter import Slow
from tests.http.live import seed_key
from tests.processes import free_port


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


async def _balance(database_url: str) -> int:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            value = await session.scalar(select(Account.credits_balance))
    finally:
        await engine.dispose()
    return int(value or 0)


async def test_a_request_cut_off_by_the_shutdown_grace_is_a_503_and_not_charged(
    database_url: str, fake_openrouter: Any
) -> None:
    from alttext.app import create_app

    fake_openrouter.script(Slow(30))  # the model answers long after the grace
    key = await seed_key(database_url)
    settings = make_settings(
        database_url, **openrouter_settings(fake_openrouter), shutdown_grace_s=0.5
    )
    config = uvicorn.Config(
        create_app(settings), host="127.0.0.1", port=free_port(), **uvicorn_options(settings)
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="shutdown-uvicorn", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert thread.is_alive(), "the server exited during start-up"
        assert time.monotonic() < deadline, "the server did not start"
        await asyncio.sleep(0.02)
    try:
        async with httpx.AsyncClient(
            base_url=f"http://127.0.0.1:{config.port}", timeout=30
        ) as client:
            pending = asyncio.create_task(
                client.post(
                    "/v1/alt-text",
                    headers={"Authorization": f"Bearer {key}", "Idempotency-Key": "shut-1"},
                    files={"image": ("a.png", png())},
                )
            )
            while not fake_openrouter.chat_requests:  # the model call is under way
                assert not pending.done(), pending.result().text
                await asyncio.sleep(0.02)
            server.should_exit = True  # what SIGTERM does
            answer = await pending
    finally:
        server.should_exit = True
        await asyncio.to_thread(thread.join, 30)
    assert not thread.is_alive(), "the server did not stop"
    assert answer.status_code == 503, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert int(answer.headers["retry-after"]) >= 1
    problem = answer.json()
    assert problem["code"] == "service_unavailable"
    assert problem["status"] == 503
    assert problem["request_id"] == answer.headers["x-request-id"]
    assert await _balance(database_url) == 10  # seed_key's 10 credits, none charged
