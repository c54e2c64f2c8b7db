"""The happy paths of POST /v1/alt-text on the offline engine, JSON and multipart."""

from __future__ import annotations

import base64
import io

from PIL import Image, ImageDraw, ImageFont

from tests.conftest import Account, Service


def text_png(words: str = "Summer Sale 50% off", size: tuple[int, int] = (800, 300)) -> bytes:
    image = Image.new("RGB", size, "white")
    ImageDraw.Draw(image).text((40, 100), words, fill="black", font=ImageFont.load_default(size=56))
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


async def test_multipart_upload_returns_checked_alt_text(
    service: Service, account: Account
) -> None:
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("whatever.bin", text_png(), "application/octet-stream")},
        data={"role": "text"},
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert "Summer Sale" in body["alt_text"]
    assert body["role"] == "text"
    assert body["image"] == {
        "width": 800,
        "height": 300,
        "format": "png",
        "sent_width": 800,
        "sent_height": 300,
    }
    assert body["id"].startswith("req_")
    assert body["usage"]["credits"] == 1
    assert body["credits_remaining"] == 99
    assert response.headers["x-request-id"]
    assert (
        int(response.headers["ratelimit-remaining"]) == int(response.headers["ratelimit-limit"]) - 1
    )


async def test_json_base64_and_data_uri_are_accepted(service: Service, account: Account) -> None:
    raw = base64.b64encode(text_png()).decode()
    for image in (raw, f"data:image/png;base64,{raw}"):
        response = await service.client.post(
            "/v1/alt-text", headers=account.headers, json={"image": image, "language": ["en", "de"]}
        )
        assert response.status_code == 200, response.text
        assert set(response.json()["alt_texts"]) == {"en", "de"}


async def test_caller_request_id_is_echoed_when_sane(service: Service, account: Account) -> None:
    ok = await service.client.get(
        "/v1/account", headers={**account.headers, "X-Request-ID": "abc-123"}
    )
    assert ok.headers["x-request-id"] == "abc-123"
    bad = await service.client.get(
        "/v1/account", headers={**account.headers, "X-Request-ID": "a b\tc"}
    )
    assert bad.headers["x-request-id"].startswith("req_")


async def test_missing_and_bad_keys_are_401_problems(service: Service, account: Account) -> None:
    missing = await service.client.get("/v1/account")
    assert missing.status_code == 401
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["code"] == "unauthorized"
    via_header = await service.client.get("/v1/account", headers={"X-API-Key": account.key})
    assert via_header.status_code == 200
    last = "0" if account.key[-1] != "0" else "1"  # a real typo: never the key itself
    typo = await service.client.get("/v1/account", headers={"X-API-Key": account.key[:-1] + last})
    assert typo.status_code == 401
