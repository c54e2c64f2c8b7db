"""POST /v1/alt-text/batch: per-item results, only successes charged."""

from __future__ import annotations

import base64
import io
from typing import Any

from PIL import Image


def b64png(color: str = "teal") -> str:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), color).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


async def test_batch_mixes_successes_and_failures_and_charges_successes(
    service: Any, account: Any
) -> None:
    body = {
        "defaults": {"language": ["en", "fr"], "max_length": 80},
        "items": [
            {"id": "a", "image": b64png("teal")},
            {"id": "b", "image": b64png("orange"), "language": "de"},
            {"id": "c", "image": "not base64!"},
            {"id": "d", "image": b64png(), "role": "banana"},
            {"id": "e", "image_url": "http://169.254.169.254/latest/meta-data/"},
        ],
    }
    r = await service.client.post("/v1/alt-text/batch", headers=account.headers, json=body)
    assert r.status_code == 200, r.text
    data = {item["id"]: item for item in r.json()["data"]}
    assert [item["id"] for item in r.json()["data"]] == ["a", "b", "c", "d", "e"]
    assert data["a"]["status"] == "succeeded"
    assert set(data["a"]["result"]["alt_texts"]) == {"en", "fr"}
    assert set(data["b"]["result"]["alt_texts"]) == {"de"}
    assert data["c"]["error"]["code"] == "invalid_image"
    assert data["d"]["error"]["code"] == "invalid_request"
    assert data["e"]["error"]["code"] == "image_fetch_failed"
    assert r.json()["succeeded"] == 2
    assert r.json()["failed"] == 3
    assert r.json()["credits_used"] == 2
    account_now = await service.client.get("/v1/account", headers=account.headers)
    assert account_now.json()["credits_remaining"] == 98
    assert r.json()["credits_remaining"] == 98


async def test_batch_shape_errors_are_422_and_charge_nothing(service: Any, account: Any) -> None:
    bad_bodies = [
        {"items": []},
        {"items": [{"id": str(i), "image": b64png()} for i in range(51)]},
        {"items": [{"id": "x", "image": b64png()}, {"id": "x", "image": b64png()}]},
        {"items": [{"image": b64png()}]},
        {"items": [{"id": "a", "image": b64png()}], "defaults": {"image": b64png()}},
        {"items": [{"id": "a", "image": b64png()}], "extra": 1},
        {"items": "nope"},
    ]
    for body in bad_bodies:
        r = await service.client.post("/v1/alt-text/batch", headers=account.headers, json=body)
        assert r.status_code == 422, body
        assert r.json()["code"] == "invalid_request"
    text = await service.client.post(
        "/v1/alt-text/batch",
        headers={**account.headers, "content-type": "text/plain"},
        content=b"hello",
    )
    assert text.status_code == 415
    broken = await service.client.post(
        "/v1/alt-text/batch",
        headers={**account.headers, "content-type": "application/json"},
        content=b"{",
    )
    assert broken.status_code == 400
    account_now = await service.client.get("/v1/account", headers=account.headers)
    assert account_now.json()["credits_remaining"] == 100


async def test_batch_is_idempotent(service: Any, account: Any) -> None:
    body = {"items": [{"id": "a", "image": b64png()}, {"id": "b", "image": b64png("red")}]}
    headers = {**account.headers, "Idempotency-Key": "batch-1"}
    first = await service.client.post("/v1/alt-text/batch", headers=headers, json=body)
    second = await service.client.post("/v1/alt-text/batch", headers=headers, json=body)
    assert first.json() == second.json()
    assert second.headers["idempotent-replayed"] == "true"
    account_now = await service.client.get("/v1/account", headers=account.headers)
    assert account_now.json()["credits_remaining"] == 98
