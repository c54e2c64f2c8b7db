"""``role: "decorative"`` from the caller: "" at once, no model call, no charge, metered as free.

Against the fake OpenRouter so a model call would be seen: it must get none. A model that itself
classifies an image as decorative under ``auto`` ran, and is charged as usual.
"""

from __future__ import annotations

import base64
import io
import json
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from PIL import Image

from tests.conftest import Account, Service, openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import FakeOpenRouter, Reply

CREDITS = 10


@dataclass
class Setup:
    service: Service
    account: Account
    fake: FakeOpenRouter

    async def post(self, path: str = "/v1/alt-text", **kwargs: Any) -> httpx.Response:
        return await self.service.client.post(path, headers=self.account.headers, **kwargs)

    async def balance(self) -> int:
        response = await self.service.client.get("/v1/account", headers=self.account.headers)
        credits: int = response.json()["credits_remaining"]
        return credits

    async def usage_totals(self) -> dict[str, Any]:
        response = await self.service.client.get("/v1/usage", headers=self.account.headers)
        assert response.status_code == 200, response.text
        totals: dict[str, Any] = response.json()["totals"]
        return totals


@pytest.fixture
async def setup(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> AsyncIterator[Setup]:
    async with service_factory(**openrouter_settings(fake_openrouter)) as service:
        account = await service.create_account(credits=CREDITS)
        yield Setup(service, account, fake_openrouter)


def png(width: int = 200, height: int = 100) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), "teal").save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def reply(text: str, role: str) -> Reply:
    body = {
        "role": role,
        "text_in_image": None,
        "alt_texts": {"en": text},
        "long_description": None,
    }
    return Reply(content=json.dumps(body))


async def test_decorative_is_answered_at_once_and_free(setup: Setup) -> None:
    response = await setup.post(
        json={"image": b64(png()), "role": "decorative", "language": ["en", "de"]}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["alt_text"] == ""
    assert body["alt_texts"] == {"en": "", "de": ""}
    assert body["decorative"] is True
    assert body["role"] == "decorative"
    assert body["needs_review"] is False
    assert body["model"] == "none"
    assert body["image"] == {
        "width": 200, "height": 100, "format": "png", "sent_width": 0, "sent_height": 0,
    }  # fmt: skip
    assert body["usage"] == {
        "credits": 0, "input_tokens": 0, "output_tokens": 0, "upstream_cost_usd": 0.0,
    }  # fmt: skip
    assert body["credits_remaining"] == CREDITS
    assert body["timing_ms"]["upstream"] == 0
    assert setup.fake.requests == []  # not even a model listing
    assert await setup.balance() == CREDITS


async def test_multipart_decorative_is_free_too(setup: Setup) -> None:
    response = await setup.post(
        files={"image": ("divider.png", png(), "image/png")}, data={"role": "decorative"}
    )
    assert response.status_code == 200, response.text
    assert response.json()["alt_text"] == ""
    assert response.json()["usage"]["credits"] == 0
    assert setup.fake.chat_requests == []
    assert await setup.balance() == CREDITS


async def test_decorative_needs_no_credits(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    async with service_factory(**openrouter_settings(fake_openrouter)) as service:
        broke = await service.create_account("broke@example.com", credits=0)
        post = service.client.post
        free = await post(
            "/v1/alt-text", headers=broke.headers, json={"image": b64(png()), "role": "decorative"}
        )
        assert free.status_code == 200, free.text
        assert free.json()["credits_remaining"] == 0
        paid = await post("/v1/alt-text", headers=broke.headers, json={"image": b64(png())})
        assert paid.status_code == 402
    assert fake_openrouter.chat_requests == []


@pytest.mark.parametrize(
    ("image", "status", "code"),
    [
        (b"%PDF-1.7 definitely not an image", 415, "unsupported_media_type"),
        (b"\x89PNG\r\n\x1a\n", 400, "invalid_image"),
        (png(4, 4), 400, "invalid_image"),
    ],
)
async def test_a_decorative_image_is_still_validated(
    setup: Setup, image: bytes, status: int, code: str
) -> None:
    response = await setup.post(json={"image": b64(image), "role": "decorative"})
    assert response.status_code == status, response.text
    assert response.json()["code"] == code
    assert setup.fake.chat_requests == []
    assert await setup.balance() == CREDITS
    totals = await setup.usage_totals()
    assert (totals["requests"], totals["failed"], totals["credits"]) == (1, 1, 0)


async def test_a_model_that_classifies_decorative_is_charged(setup: Setup) -> None:
    setup.fake.enqueue(reply("", "decorative"))
    response = await setup.post(json={"image": b64(png())})
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["alt_text"], body["decorative"], body["role"]) == ("", True, "decorative")
    assert body["usage"]["credits"] == 1
    assert len(setup.fake.chat_requests) == 1
    assert await setup.balance() == CREDITS - 1


async def test_batch_decorative_items_are_free(setup: Setup) -> None:
    setup.fake.enqueue(reply("Teal rectangle on a plain page.", "informative"))
    body = {
        "defaults": {"language": "en"},
        "items": [
            {"id": "divider", "image": b64(png()), "role": "decorative"},
            {"id": "photo", "image": b64(png())},
            {"id": "spacer", "image": b64(png(300, 20)), "role": "decorative"},
        ],
    }
    response = await setup.post("/v1/alt-text/batch", json=body)
    assert response.status_code == 200, response.text
    data = {item["id"]: item for item in response.json()["data"]}
    assert data["divider"]["result"]["alt_text"] == ""
    assert data["divider"]["result"]["usage"]["credits"] == 0
    assert data["spacer"]["result"]["image"]["width"] == 300
    assert data["photo"]["result"]["usage"]["credits"] == 1
    assert response.json()["succeeded"] == 3
    assert response.json()["credits_used"] == 1
    assert response.json()["credits_remaining"] == CREDITS - 1
    assert len(setup.fake.chat_requests) == 1
    assert await setup.balance() == CREDITS - 1


async def test_usage_counts_a_decorative_request_as_free_and_not_failed(setup: Setup) -> None:
    setup.fake.enqueue(reply("Teal rectangle on a plain page.", "informative"))
    assert (await setup.post(json={"image": b64(png()), "role": "decorative"})).status_code == 200
    assert (await setup.post(json={"image": b64(png())})).status_code == 200
    totals = await setup.usage_totals()
    assert totals["requests"] == 2
    assert totals["succeeded"] == 2
    assert totals["failed"] == 0
    assert totals["credits"] == 1


async def test_a_decorative_image_url_is_fetched_checked_and_free(
    service_factory: Callable[..., Any], fake_openrouter: FakeOpenRouter
) -> None:
    settings = openrouter_settings(fake_openrouter, allow_private_urls=True)
    with running_image_host() as host:
        host.image("/divider.png", png(640, 16))
        async with service_factory(**settings) as service:
            account = await service.create_account(credits=CREDITS)
            response = await service.client.post(
                "/v1/alt-text",
                headers=account.headers,
                json={"image_url": host.url("/divider.png"), "role": "decorative"},
            )
            assert response.status_code == 200, response.text
            assert response.json()["image"]["width"] == 640
            assert response.json()["usage"]["credits"] == 0
            gone = await service.client.post(
                "/v1/alt-text",
                headers=account.headers,
                json={"image_url": host.url("/missing.png"), "role": "decorative"},
            )
            assert gone.status_code == 400
            assert gone.json()["code"] == "image_fetch_failed"
        assert len(host.requests_to("/divider.png")) == 1
    assert fake_openrouter.chat_requests == []


async def test_asking_a_decorative_image_for_a_long_description_says_why_there_is_none(
    setup: Setup,
) -> None:
    response = await setup.post(
        json={"image": b64(png()), "role": "decorative", "long_description": True}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["long_description"] is None
    assert body["needs_review"] is True
    assert body["review_reasons"] == ["no long description: the image is marked decorative"]
    assert body["usage"]["credits"] == 0
