"""Money under concurrency and failure: reserve -> settle | release, through the real API."""

from __future__ import annotations

import asyncio
import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from alttext.billing import credits
from alttext.billing.credits import release_expired, reserve
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import create_engine, session_factory, transaction, utcnow
from tests.conftest import openrouter_settings
from tests.fakes.openrouter import Slow, Status


def photo_jpeg() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (320, 240), (30, 120, 200)).save(buf, format="JPEG")
    return buf.getvalue()


async def ledger(database_url: str, account_id: str) -> tuple[int, list[tuple[str, int]]]:
    engine = create_engine(database_url)
    try:
        async with session_factory(engine)() as session:
            total = await session.scalar(
                select(func.coalesce(func.sum(CreditEntry.credits), 0)).where(
                    CreditEntry.account_id == account_id
                )
            )
            rows = await session.execute(
                select(CreditEntry.kind, CreditEntry.credits)
                .where(CreditEntry.account_id == account_id)
                .order_by(CreditEntry.created_at)
            )
            return int(total or 0), [(k, int(c)) for k, c in rows]
    finally:
        await engine.dispose()


async def balance(client: Any, headers: dict[str, str]) -> int:
    response = await client.get("/v1/account", headers=headers)
    assert response.status_code == 200, response.text
    return int(response.json()["credits_remaining"])


async def test_200_concurrent_requests_on_50_credits_charge_exactly_50(
    service_factory: Any, fake_openrouter: Any, database_url: str
) -> None:
    # Every model call is slow, so all 200 requests overlap while the credits are reserved.
    fake_openrouter.script(*[Slow(0.4) for _ in range(60)])
    settings = openrouter_settings(
        fake_openrouter,
        max_concurrent_per_account=1000,
        rate_limit_per_minute=100_000,
        cache_ttl_s=0,  # the same image 200 times: every request must reach the model
        cpu_queue=1000,  # no CPU backpressure (503): this test is about the credits
    )
    async with service_factory(**settings) as svc:
        acct = await svc.create_account("rush@example.com", credits=50)
        image = photo_jpeg()

        async def one() -> int:
            response = await svc.client.post(
                "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", image)}
            )
            if response.status_code == 402:
                assert response.json()["code"] == "insufficient_credits"
            return response.status_code

        statuses = await asyncio.gather(*(one() for _ in range(200)))
        assert statuses.count(200) == 50
        assert statuses.count(402) == 150
        assert await balance(svc.client, acct.headers) == 0
    total, entries = await ledger(database_url, acct.id)
    assert total == 0
    assert entries.count(("usage", -1)) == 50
    assert ("release", 1) not in entries
    # The model was called exactly once per charged request: no call for a refused one.
    assert len(fake_openrouter.chat_requests) == 50


@pytest.mark.parametrize(
    "failure", [Status(400, message="bad"), Status(401), Status(503)], ids=["400", "401", "503"]
)
async def test_a_model_failure_after_the_reservation_charges_nothing(
    service_factory: Any, fake_openrouter: Any, database_url: str, failure: Status
) -> None:
    fake_openrouter.script(*[failure] * 20)
    settings = openrouter_settings(fake_openrouter, upstream_budget_s=1.0)
    async with service_factory(**settings) as svc:
        acct = await svc.create_account("fail@example.com", credits=5)
        response = await svc.client.post(
            "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", photo_jpeg())}
        )
        assert response.status_code in (502, 503)
        assert response.headers["content-type"] == "application/problem+json"
        assert await balance(svc.client, acct.headers) == 5
        usage = await svc.client.get("/v1/usage", headers=acct.headers)
        assert usage.json()["totals"]["failed"] == 1
        assert usage.json()["totals"]["credits"] == 0
    total, entries = await ledger(database_url, acct.id)
    assert total == 5
    assert entries == [("grant", 5), ("usage", -1), ("release", 1)]


async def test_no_credit_means_402_before_any_model_call(
    service_factory: Any, fake_openrouter: Any
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("broke@example.com", credits=0)
        response = await svc.client.post(
            "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", photo_jpeg())}
        )
        assert response.status_code == 402
        assert response.json()["code"] == "insufficient_credits"
    assert fake_openrouter.chat_requests == []


async def test_expired_reservations_are_released_once(service: Any, database_url: str) -> None:
    acct = await service.create_account("expire@example.com", credits=3)
    sessions = service.app.state.services.sessions
    async with transaction(sessions) as session:
        await reserve(session, account_id=acct.id, request_id="req_crashed", ttl_s=60)
    assert await release_expired(sessions) == 0  # not expired yet
    later = utcnow() + timedelta(seconds=61)
    assert await release_expired(sessions, now=later) == 1
    assert await release_expired(sessions, now=later) == 0
    async with sessions() as session:
        state = await session.scalar(
            select(CreditReservation.state).where(CreditReservation.id == "req_crashed")
        )
    assert state == "released"
    total, entries = await ledger(database_url, acct.id)
    assert total == 3
    assert entries == [("grant", 3), ("usage", -1), ("release", 1)]


async def _database_gone(*_args: Any, **_kwargs: Any) -> bool:
    raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))


async def test_database_failing_at_settle_is_a_503_and_the_credit_comes_back_at_once(
    service: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await service.create_account("midway@example.com", credits=4)
    monkeypatch.setattr(credits, "settle", _database_gone)
    response = await service.client.post(
        "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", photo_jpeg())}
    )
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    assert response.headers["retry-after"]
    monkeypatch.undo()
    # The settle transaction rolled back whole, and the failure gave the credit back in its
    # own transaction: metered as a failed request, nothing left for the expiry sweep.
    total, entries = await ledger(database_url, acct.id)
    assert total == 4
    assert entries == [("grant", 4), ("usage", -1), ("release", 1)]
    usage = (await service.client.get("/v1/usage", headers=acct.headers)).json()["totals"]
    assert (usage["requests"], usage["failed"], usage["credits"]) == (1, 1, 0)
    sessions = service.app.state.services.sessions
    assert await release_expired(sessions, now=utcnow() + timedelta(hours=1)) == 0


async def test_database_gone_at_settle_and_at_release_leaves_the_credit_to_the_sweep(
    service: Any, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await service.create_account("midway@example.com", credits=4)
    monkeypatch.setattr(credits, "settle", _database_gone)
    monkeypatch.setattr(credits, "release", _database_gone)
    response = await service.client.post(
        "/v1/alt-text", headers=acct.headers, files={"image": ("a.jpg", photo_jpeg())}
    )
    assert response.status_code == 503
    assert response.json()["code"] == "service_unavailable"
    monkeypatch.undo()
    # Both transactions rolled back whole: no usage event, the reservation still held.
    total, entries = await ledger(database_url, acct.id)
    assert entries == [("grant", 4), ("usage", -1)]
    usage = await service.client.get("/v1/usage", headers=acct.headers)
    assert usage.json()["totals"]["requests"] == 0
    # The customer got no answer, so the expiry sweep gives the credit back.
    sessions = service.app.state.services.sessions
    assert await release_expired(sessions, now=utcnow() + timedelta(hours=1)) == 1
    total, entries = await ledger(database_url, acct.id)
    assert total == 4
    assert entries[-1] == ("release", 1)
