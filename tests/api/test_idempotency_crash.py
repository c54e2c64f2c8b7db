"""Idempotency-Key across a crash: an answer that was charged for is kept in the charging
transaction, so a retry replays it (never runs, never charges again), whatever dies when."""

from __future__ import annotations

import base64
import io
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select, update

from alttext import idempotency
from alttext.billing.models import CreditEntry
from alttext.db import transaction, utcnow
from alttext.idempotency import IdempotencyRecord
from alttext.result_cache import Flight
from tests.conftest import openrouter_settings


class ProcessDied(BaseException):
    """Stands for the process dying: nothing after it runs, no handler answers."""


def png(color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


async def _die(*args: Any, **kwargs: Any) -> None:
    raise ProcessDied


async def _spent(svc: Any, account_id: str) -> int:
    """Credits charged per the ledger: spends minus releases."""
    async with svc.app.state.services.sessions() as session:
        total = await session.scalar(
            select(func.coalesce(func.sum(CreditEntry.credits), 0)).where(
                CreditEntry.account_id == account_id, CreditEntry.kind.in_(("usage", "release"))
            )
        )
    return -int(total or 0)


async def _expire_locks(svc: Any) -> None:
    """What time does to a dead process's claim: its lock runs out."""
    async with transaction(svc.app.state.services.sessions) as session:
        await session.execute(
            update(IdempotencyRecord).values(locked_until=utcnow() - timedelta(seconds=1))
        )


async def test_a_crash_between_the_charge_and_finish_replays_the_charged_answer(
    service_factory: Any, fake_openrouter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("crash-finish@example.com", credits=10)
        headers = {**acct.headers, "Idempotency-Key": "order-7"}
        monkeypatch.setattr(idempotency, "finish", _die)
        with pytest.raises(ProcessDied):
            await svc.client.post(
                "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
            )
        monkeypatch.undo()
        assert await _spent(svc, acct.id) == 1
        await _expire_locks(svc)

        retry = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert retry.status_code == 200, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        body = retry.json()
        assert body["alt_text"]
        assert body["usage"]["credits"] == 1
        assert body["credits_remaining"] == 9
        again = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json() == body
        assert await _spent(svc, acct.id) == 1
        account = await svc.client.get("/v1/account", headers=acct.headers)
        assert account.json()["credits_remaining"] == 9
    assert len(fake_openrouter.chat_requests) == 1


async def test_a_failure_right_after_the_charge_keeps_the_answer_for_the_retry(
    service_factory: Any, fake_openrouter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("crash-store@example.com", credits=10)
        headers = {**acct.headers, "Idempotency-Key": "order-8"}
        # The first step after the settle commit: sharing the answer through the cache.
        monkeypatch.setattr(Flight, "store", _die)
        with pytest.raises(ProcessDied):
            await svc.client.post(
                "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
            )
        monkeypatch.undo()
        # No lock to wait for: the request's own failure handling closed the key on its
        # kept answer instead of freeing it.
        retry = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert retry.status_code == 200, retry.text
        assert retry.headers["idempotent-replayed"] == "true"
        assert retry.json()["usage"]["credits"] == 1
        assert await _spent(svc, acct.id) == 1
    assert len(fake_openrouter.chat_requests) == 1


async def test_a_crash_before_the_charge_runs_the_retry_once(
    service_factory: Any, fake_openrouter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alttext.billing import credits

    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("crash-early@example.com", credits=10)
        headers = {**acct.headers, "Idempotency-Key": "order-9"}
        monkeypatch.setattr(credits, "reserve", _die)
        with pytest.raises(ProcessDied):
            await svc.client.post(
                "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
            )
        monkeypatch.undo()
        await _expire_locks(svc)
        retry = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert retry.status_code == 200, retry.text
        assert "idempotent-replayed" not in retry.headers
        assert await _spent(svc, acct.id) == 1


async def test_a_batch_crash_replays_charged_items_and_runs_the_rest(
    service_factory: Any, fake_openrouter: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def b64(color: str) -> str:
        return base64.b64encode(png(color)).decode()

    body = {"items": [{"id": c, "image": b64(c)} for c in ("teal", "orange", "navy")]}
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("crash-batch@example.com", credits=10)
        headers = {**acct.headers, "Idempotency-Key": "batch-1"}
        monkeypatch.setattr(idempotency, "finish", _die)
        with pytest.raises(ProcessDied):
            await svc.client.post("/v1/alt-text/batch", headers=headers, json=body)
        monkeypatch.undo()
        assert await _spent(svc, acct.id) == 3
        await _expire_locks(svc)

        retry = await svc.client.post("/v1/alt-text/batch", headers=headers, json=body)
        assert retry.status_code == 200, retry.text
        answer = retry.json()
        assert [item["status"] for item in answer["data"]] == ["succeeded"] * 3
        assert answer["credits_used"] == 3
        assert answer["credits_remaining"] == 7
        assert await _spent(svc, acct.id) == 3
        replay = await svc.client.post("/v1/alt-text/batch", headers=headers, json=body)
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == answer
        # The same key with another body is still a conflict, not a reuse of kept items.
        other = await svc.client.post(
            "/v1/alt-text/batch", headers=headers, json={"items": body["items"][:1]}
        )
        assert other.status_code == 409
    assert len(fake_openrouter.chat_requests) == 3


async def test_a_stale_owner_can_neither_keep_nor_free_a_taken_over_key(service: Any) -> None:
    sessions = service.app.state.services.sessions
    acct = await service.create_account("stale@example.com", credits=1)
    first = await idempotency.claim(sessions, account_id=acct.id, key="k", request_hash="h")
    assert isinstance(first, idempotency.Claim)
    await _expire_locks(service)
    second = await idempotency.claim(sessions, account_id=acct.id, key="k", request_hash="h")
    assert isinstance(second, idempotency.Claim)
    assert second.token != first.token

    async with transaction(sessions) as session:
        assert not await idempotency.keep(session, first, status_code=200, body={"stale": 1})
    await idempotency.abandon(sessions, first)
    await idempotency.finish(sessions, first, status_code=200, body={"stale": 1})
    async with transaction(sessions) as session:
        assert await idempotency.keep(session, second, status_code=200, body={"kept": 2})
    # The new owner fails after keeping: its kept (charged) answer is what a retry gets.
    await idempotency.abandon(sessions, second)
    replay = await idempotency.claim(sessions, account_id=acct.id, key="k", request_hash="h")
    assert replay == idempotency.Replay(200, {"kept": 2})


async def test_a_crash_after_a_job_was_created_replays_it_and_makes_no_second_job(
    service: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    acct = await service.create_account("crash-job@example.com", credits=10)
    headers = {**acct.headers, "Idempotency-Key": "job-1"}
    body = {"items": [{"image_url": "https://images.example/a.png"}]}
    monkeypatch.setattr(idempotency, "finish", _die)
    with pytest.raises(ProcessDied):
        await service.client.post("/v1/jobs", headers=headers, json=body)
    monkeypatch.undo()
    await _expire_locks(service)

    retry = await service.client.post("/v1/jobs", headers=headers, json=body)
    assert retry.status_code == 202, retry.text
    assert retry.headers["idempotent-replayed"] == "true"
    job_id = retry.json()["id"]
    assert retry.headers["location"] == f"/v1/jobs/{job_id}"
    listed = await service.client.get("/v1/jobs", headers=acct.headers)
    assert [job["id"] for job in listed.json()["data"]] == [job_id]
