"""Hostile JSON on every endpoint that reads JSON: a 400 problem, never a 500, never charged.

Bodies parsed by hand (alt text, batch, JSON-valued multipart fields) and bodies FastAPI
validates into a model (account, keys, sign-up, billing) go through the same ``load_json``.
"""

from __future__ import annotations

import io
from typing import Any

import pytest
from PIL import Image

from alttext.http.body import MAX_JSON_DEPTH
from alttext.http.routing import MAX_MODEL_BODY
from tests.conftest import Account, Service

DEEP = f"nests arrays and objects too deeply (at most {MAX_JSON_DEPTH} levels)."
HOSTILE = {
    # ~1,000 levels: Python's parser raises RecursionError (a 500 before).
    "nested_1000": ("[" * 1_000 + "]" * 1_000, f"The body {DEEP}"),
    "object_nested_1000": ('{"a":' * 1_000 + "1" + "}" * 1_000, f"The body {DEEP}"),
    "just_too_deep": ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), f"The body {DEEP}"),
    # Over Python's int-string conversion limit: ValueError (a 500 before).
    "int_5000_digits": (
        '{"max_length": ' + "7" * 5_000 + "}",
        "The body holds a number with too many digits.",
    ),
    "nan": ('{"max_length": NaN}', "The body holds NaN, which is not JSON."),
    "truncated": ('{"items": [', "The body is not valid JSON."),
}
ENDPOINTS = [
    ("POST", "/v1/alt-text"),
    ("POST", "/v1/alt-text/batch"),
    ("PATCH", "/v1/account"),
    ("DELETE", "/v1/account"),
    ("POST", "/v1/account/email/confirm"),
    ("POST", "/v1/keys"),
    ("POST", "/v1/billing/checkout"),
    ("POST", "/v1/signup"),
    ("POST", "/v1/signup/verify"),
]


def assert_problem(response: Any, status: int, code: str, detail: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["code"] == code
    assert body["detail"] == detail
    assert body["request_id"] == response.headers["x-request-id"]


@pytest.mark.parametrize(("method", "path"), ENDPOINTS)
async def test_hostile_json_is_a_400_everywhere(
    service: Service, account: Account, method: str, path: str
) -> None:
    for name, (raw, detail) in HOSTILE.items():
        response = await service.client.request(
            method,
            path,
            content=raw.encode(),
            headers={**account.headers, "Content-Type": "application/json"},
        )
        assert_problem(response, 400, "invalid_request", detail)
        assert response.json()["title"] == "Invalid request", name
    shown = await service.client.get("/v1/account", headers=account.headers)
    assert shown.status_code == 200  # the erasure endpoint erased nothing
    assert shown.json()["credits_remaining"] == 100


def png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), "teal").save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize(
    ("field", "value", "detail"),
    [
        ("language", "[" * 1_000 + "]" * 1_000, f"Form field 'language' {DEEP}"),
        ("keywords", "[" * 40 + "]" * 40, f"Form field 'keywords' {DEEP}"),
        (
            "keywords",
            "[" + "1" * 5_000 + "]",
            "Form field 'keywords' holds a number with too many digits.",
        ),
        ("language", '["en", NaN]', "Form field 'language' holds NaN, which is not JSON."),
        ("language", '["en"', "Form field 'language' is not valid JSON."),
    ],
)
async def test_hostile_json_in_multipart_list_fields_is_a_400(
    service: Service, account: Account, field: str, value: str, detail: str
) -> None:
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("a.png", png(), "image/png")},
        data={field: value},
    )
    assert_problem(response, 400, "invalid_request", detail)
    shown = await service.client.get("/v1/account", headers=account.headers)
    assert shown.json()["credits_remaining"] == 100


async def test_a_json_list_in_a_form_field_still_works(service: Service, account: Account) -> None:
    response = await service.client.post(
        "/v1/alt-text",
        headers=account.headers,
        files={"image": ("a.png", png(), "image/png")},
        data={"language": '["en", "de"]'},
    )
    assert response.status_code == 200, response.text
    assert set(response.json()["alt_texts"]) == {"en", "de"}


async def test_model_bodies_are_capped(service: Service, account: Account) -> None:
    raw = b'{"name": "' + b"n" * MAX_MODEL_BODY + b'"}'
    response = await service.client.patch(
        "/v1/account",
        content=raw,
        headers={**account.headers, "Content-Type": "application/json"},
    )
    detail = f"The request body is {len(raw)} bytes; the limit is {MAX_MODEL_BODY} bytes."
    assert_problem(response, 413, "image_too_large", detail)
    assert response.json()["title"] == "Request too large"


async def test_model_bodies_under_the_cap_are_validated_as_before(
    service: Service, account: Account
) -> None:
    ok = await service.client.patch("/v1/account", headers=account.headers, json={"name": "Ada"})
    assert ok.status_code == 200
    assert ok.json()["name"] == "Ada"
    bad = await service.client.patch("/v1/account", headers=account.headers, json={"name": 5})
    assert_problem(bad, 422, "invalid_request", "The request has invalid or missing fields.")
    assert bad.json()["errors"] == [{"field": "name", "message": "Input should be a valid string"}]
