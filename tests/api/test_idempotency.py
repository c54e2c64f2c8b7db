"""Idempotency-Key on POST /v1/alt-text: one charge, identical answers, conflicts refused."""

from __future__ import annotations

import asyncio
import io
from typing import Any

from PIL import Image

from tests.conftest import openrouter_settings
from tests.fakes.openrouter import Slow


def png(color: str = "teal") -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return buf.getvalue()


async def test_ten_concurrent_retries_charge_once_and_answer_identically(
    service_factory: Any, fake_openrouter: Any
) -> None:
    fake_openrouter.script(Slow(0.5))
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("idem@example.com", credits=10)
        headers = {**acct.headers, "Idempotency-Key": "order-42-image-1"}
        image = png()

        async def one() -> Any:
            # Multipart boundaries differ per request; the fingerprint must not.
            return await svc.client.post(
                "/v1/alt-text",
                headers=headers,
                files={"image": ("a.png", image)},
                data={"context": "Product page"},
            )

        responses = await asyncio.gather(*(one() for _ in range(10)))
        assert [r.status_code for r in responses] == [200] * 10
        bodies = [r.json() for r in responses]
        assert all(b == bodies[0] for b in bodies)
        replayed = [r.headers.get("idempotent-replayed") for r in responses]
        assert replayed.count("true") == 9
        account = await svc.client.get("/v1/account", headers=acct.headers)
        assert account.json()["credits_remaining"] == 9
    assert len(fake_openrouter.chat_requests) == 1


async def test_same_key_with_another_body_is_a_conflict(service: Any) -> None:
    acct = await service.create_account("conflict@example.com", credits=10)
    headers = {**acct.headers, "Idempotency-Key": "k-1"}
    first = await service.client.post(
        "/v1/alt-text", headers=headers, files={"image": ("a.png", png("teal"))}
    )
    assert first.status_code == 200
    other = await service.client.post(
        "/v1/alt-text", headers=headers, files={"image": ("a.png", png("orange"))}
    )
    assert other.status_code == 409
    assert other.json()["code"] == "idempotency_conflict"
    again = await service.client.post(
        "/v1/alt-text", headers=headers, files={"image": ("a.png", png("teal"))}
    )
    assert again.status_code == 200
    assert again.json() == first.json()
    account = await service.client.get("/v1/account", headers=acct.headers)
    assert account.json()["credits_remaining"] == 9


async def test_keys_are_per_account(service: Any) -> None:
    a = await service.create_account("a@example.com", credits=5)
    b = await service.create_account("b@example.com", credits=5)
    for acct in (a, b):
        r = await service.client.post(
            "/v1/alt-text",
            headers={**acct.headers, "Idempotency-Key": "shared"},
            files={"image": ("a.png", png())},
        )
        assert r.status_code == 200
        assert "idempotent-replayed" not in r.headers


async def test_client_errors_are_replayed_and_server_errors_free_the_key(
    service_factory: Any, fake_openrouter: Any
) -> None:
    from tests.fakes.openrouter import Status

    fake_openrouter.script(Status(400, message="bad request"))
    async with service_factory(**openrouter_settings(fake_openrouter)) as svc:
        acct = await svc.create_account("err@example.com", credits=5)
        headers = {**acct.headers, "Idempotency-Key": "retry-me"}
        failed = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert failed.status_code == 502
        # A 5xx is transient: the same key runs again (and now succeeds), charged once.
        ok = await svc.client.post(
            "/v1/alt-text", headers=headers, files={"image": ("a.png", png())}
        )
        assert ok.status_code == 200
        assert "idempotent-replayed" not in ok.headers
        bad = {**acct.headers, "Idempotency-Key": "bad-input"}
        first = await svc.client.post(
            "/v1/alt-text", headers=bad, files={"image": ("a.png", b"not an image")}
        )
        second = await svc.client.post(
            "/v1/alt-text", headers=bad, files={"image": ("a.png", b"not an image")}
        )
        assert first.status_code == second.status_code == 415
        assert second.headers["idempotent-replayed"] == "true"
        assert second.json()["code"] == "unsupported_media_type"
        account = await svc.client.get("/v1/account", headers=acct.headers)
        assert account.json()["credits_remaining"] == 4


async def test_malformed_idempotency_keys_are_400(service: Any) -> None:
    acct = await service.create_account("m@example.com", credits=5)
    for key in ("", "x" * 256, "tab\there", "ünïcode".encode()):
        r = await service.client.post(
            "/v1/alt-text",
            headers={**acct.headers, "Idempotency-Key": key},
            files={"image": ("a.png", png())},
        )
        assert r.status_code == 400, key
        assert r.json()["code"] == "invalid_request"
    account = await service.client.get("/v1/account", headers=acct.headers)
    assert account.json()["credits_remaining"] == 5
