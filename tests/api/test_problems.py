"""One builder of problem documents: the error handlers, idempotent replays and batch items all
answer the same fields for the same error; every public code is documented."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import alttext.app  # noqa: F401  (imports every module that defines an error)
from alttext.errors import (
    AppError,
    InvalidImage,
    RateLimited,
    UnsupportedMediaType,
    problem_fields,
    problem_response,
)
from tests.conftest import Account, Service


def test_problem_fields_are_the_rfc_9457_members_plus_code_and_request_id() -> None:
    plain = InvalidImage("The file is not an image.")
    assert problem_fields(plain, "req_1") == {
        "type": "https://alttext.dev/errors/invalid_image",
        "title": "Invalid image",
        "status": 400,
        "detail": "The file is not an image.",
        "code": "invalid_image",
        "request_id": "req_1",
    }
    errors = [{"field": "role", "message": "bad"}]
    with_fields = AppError("x", errors=errors, status=503)
    assert problem_fields(with_fields, None) == {
        "type": "https://alttext.dev/errors/internal_error",
        "title": "Internal server error",
        "status": 503,
        "detail": "x",
        "code": "internal_error",
        "request_id": None,
        "errors": errors,
    }


def test_the_json_rendering_is_the_fields_with_retry_after() -> None:
    exc = RateLimited("Slow down.", retry_after=1.2)
    response = problem_response(exc, "req_2", headers={"X-Extra": "1"})
    assert response.status_code == 429
    assert response.media_type == "application/problem+json"
    assert response.headers["retry-after"] == "2"
    assert response.headers["x-extra"] == "1"
    assert json.loads(bytes(response.body)) == problem_fields(exc, "req_2")


async def test_handler_replay_and_batch_item_answer_the_same_problem(
    service: Service, account: Account
) -> None:
    not_an_image = base64.b64encode(b"plain text, not an image").decode()
    headers = {**account.headers, "Idempotency-Key": "same-problem"}
    first = await service.client.post("/v1/alt-text", headers=headers, json={"image": not_an_image})
    replay = await service.client.post(
        "/v1/alt-text", headers=headers, json={"image": not_an_image}
    )
    batch = await service.client.post(
        "/v1/alt-text/batch",
        headers=account.headers,
        json={"items": [{"id": "a", "image": not_an_image}]},
    )
    assert first.status_code == 415
    document = first.json()
    assert document == problem_fields(
        UnsupportedMediaType(document["detail"]), first.headers["x-request-id"]
    )
    assert replay.status_code == 415
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.headers["content-type"] == "application/problem+json"
    assert replay.json() == document  # stored as built, the first request's id included
    item = batch.json()["data"][0]
    assert item["status"] == "failed"
    assert item["error"] == problem_fields(
        UnsupportedMediaType(document["detail"]), batch.headers["x-request-id"]
    ) | {"errors": None}


def _codes(cls: type[AppError]) -> set[str]:
    return {cls.code}.union(*(_codes(sub) for sub in cls.__subclasses__()))


def test_every_error_code_is_documented() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "api.md").read_text()
    assert [code for code in sorted(_codes(AppError)) if f"`{code}`" not in doc] == []


async def test_starlettes_own_errors_are_our_problems(service: Service) -> None:
    missing = await service.client.get("/v1/nothing-here")
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json() == {
        "type": "https://alttext.dev/errors/not_found",
        "title": "Not found",
        "status": 404,
        "detail": "Not Found",
        "code": "not_found",
        "request_id": missing.headers["x-request-id"],
    }
    wrong = await service.client.delete("/healthz")
    assert wrong.status_code == 405
    assert wrong.headers["allow"] == "GET"
    assert wrong.json() == {
        "type": "https://alttext.dev/errors/method_not_allowed",
        "title": "Method not allowed",
        "status": 405,
        "detail": "Method Not Allowed",
        "code": "method_not_allowed",
        "request_id": wrong.headers["x-request-id"],
    }
