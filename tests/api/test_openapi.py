"""The OpenAPI document: exactly the public operations, each with its documented answers, clean
operation ids for generated clients, every error a problem, and every ref resolving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from alttext.api.alt_text_input import LIST_FIELDS
from alttext.generation.schemas import AltTextRequest

# (method, path) -> (operationId, documented response statuses)
OPERATIONS: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("GET", "/healthz"): ("healthz", {200}),
    ("GET", "/readyz"): ("readyz", {200, 503}),
    ("GET", "/v1/models"): ("list_models", {200, 401, 429}),
    ("POST", "/v1/alt-text"): (
        "create_alt_text",
        {200, 400, 401, 402, 403, 408, 409, 413, 415, 422, 429, 502, 503, 504},
    ),
    ("POST", "/v1/alt-text/batch"): (
        "create_batch",
        {200, 400, 401, 403, 408, 409, 413, 415, 422, 429},
    ),
    ("GET", "/v1/account"): ("get_account", {200, 401, 429}),
    ("PATCH", "/v1/account"): ("update_account", {200, 400, 401, 408, 413, 422, 429}),
    ("DELETE", "/v1/account"): ("erase_account", {200, 400, 401, 408, 413, 422, 429, 503}),
    ("GET", "/v1/account/export"): ("export_account_data", {200, 401, 429}),
    ("POST", "/v1/account/email/confirm"): (
        "confirm_email_change",
        {200, 400, 401, 408, 409, 413, 422, 429},
    ),
    ("POST", "/v1/account/restrict"): ("restrict_processing", {200, 401, 429}),
    ("DELETE", "/v1/account/restrict"): ("lift_restriction", {200, 401, 429}),
    ("GET", "/v1/keys"): ("list_keys", {200, 401, 429}),
    ("POST", "/v1/keys"): ("create_key", {201, 400, 401, 408, 413, 422, 429}),
    ("DELETE", "/v1/keys/{key_id}"): ("revoke_key", {204, 401, 404, 422, 429}),
    ("GET", "/v1/usage"): ("get_usage", {200, 401, 422, 429}),
    ("POST", "/v1/billing/checkout"): (
        "create_checkout",
        {200, 400, 401, 403, 408, 409, 413, 422, 429, 503},
    ),
    ("GET", "/v1/billing/transactions"): ("list_transactions", {200, 400, 401, 422, 429}),
    ("POST", "/webhooks/stripe"): ("receive_stripe_event", {200, 400, 408, 413, 422, 503}),
    ("POST", "/v1/jobs"): (
        "create_job",
        {202, 400, 401, 403, 408, 409, 413, 415, 422, 429},
    ),
    ("GET", "/v1/jobs"): ("list_jobs", {200, 400, 401, 422, 429}),
    ("GET", "/v1/jobs/{job_id}"): ("get_job", {200, 401, 404, 422, 429}),
    ("GET", "/v1/jobs/{job_id}/results"): ("job_results", {200, 400, 401, 404, 422, 429}),
    ("DELETE", "/v1/jobs/{job_id}"): ("cancel_job", {200, 401, 404, 422, 429}),
    ("GET", "/v1/webhooks/secret"): ("get_webhook_secret", {200, 401, 429}),
    ("POST", "/v1/webhooks/secret/rotate"): ("rotate_webhook_secret", {200, 401, 429}),
    ("GET", "/v1/webhooks/deliveries"): (
        "list_webhook_deliveries",
        {200, 400, 401, 422, 429},
    ),
    ("POST", "/v1/signup"): ("sign_up", {202, 400, 408, 413, 422, 429}),
    ("POST", "/v1/signup/verify"): ("verify_signup", {201, 400, 408, 413, 422, 429}),
}
PROBLEM_CONTENT = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9]*(_[a-z0-9]+)*$")


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): operation
        for path, item in doc["paths"].items()
        for method, operation in item.items()
    }


async def _doc(service: Any) -> dict[str, Any]:
    response = await service.client.get("/openapi.json")
    assert response.status_code == 200
    doc: dict[str, Any] = response.json()
    return doc


async def test_exactly_the_public_operations_with_their_answers(service: Any) -> None:
    doc = await _doc(service)
    assert doc["openapi"].startswith("3.1")
    operations = _operations(doc)
    assert set(operations) == set(OPERATIONS)
    for key, operation in operations.items():
        operation_id, statuses = OPERATIONS[key]
        assert operation["operationId"] == operation_id, key
        assert {int(s) for s in operation["responses"]} == statuses, key


async def test_operation_ids_are_clean_and_unique(service: Any) -> None:
    ids = [op["operationId"] for op in _operations(await _doc(service)).values()]
    assert [i for i in ids if not SNAKE_CASE.match(i)] == []
    assert len(ids) == len(set(ids))


async def test_every_error_is_documented_as_a_problem(service: Any) -> None:
    doc = await _doc(service)
    for key, operation in _operations(doc).items():
        for status, response in operation["responses"].items():
            if int(status) < 400 or key == ("GET", "/readyz"):
                continue
            assert response["content"] == PROBLEM_CONTENT, (key, status)
            assert response["description"], (key, status)
    schemas = doc["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert "ValidationError" not in schemas
    assert set(schemas["Problem"]["required"]) == {
        "type",
        "title",
        "status",
        "detail",
        "code",
        "request_id",
    }


async def test_every_ref_resolves_and_the_security_schemes_exist(service: Any) -> None:
    doc = await _doc(service)
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.removeprefix("#/components/schemas/") in schemas, ref
    assert set(doc["components"]["securitySchemes"]) == {"HTTPBearer", "APIKeyHeader"}
    alt_text = doc["paths"]["/v1/alt-text"]["post"]
    assert [p["name"] for p in alt_text["parameters"]] == ["Idempotency-Key"]


async def test_alt_text_bodies_come_from_one_model(service: Any) -> None:
    doc = await _doc(service)
    schemas = doc["components"]["schemas"]
    body = doc["paths"]["/v1/alt-text"]["post"]["requestBody"]
    assert body["required"] is True
    assert body["content"] == {
        "application/json": {"schema": {"$ref": "#/components/schemas/AltTextRequest"}},
        "multipart/form-data": {"schema": {"$ref": "#/components/schemas/AltTextMultipartRequest"}},
    }
    as_json = schemas["AltTextRequest"]
    form = schemas["AltTextMultipartRequest"]
    assert as_json == AltTextRequest.model_json_schema(ref_template="#/components/schemas/{model}")
    assert list(form["properties"]) == list(as_json["properties"])
    assert form["additionalProperties"] is False
    assert as_json["additionalProperties"] is False
    assert form["properties"]["image"] == {
        "title": "Image",
        "type": "string",
        "format": "binary",
        "description": "The image file (its format is read from its bytes).",
    }
    for name, prop in as_json["properties"].items():
        if name == "image":
            continue
        field = form["properties"][name]
        # The same constraints, with the JSON null alternative dropped (a form field is absent).
        expected = {k: v for k, v in prop.items() if k != "description" and v is not None}
        if "anyOf" in expected:
            branches = [b for b in expected.pop("anyOf") if b != {"type": "null"}]
            expected |= branches[0] if len(branches) == 1 else {"anyOf": branches}
        assert {k: v for k, v in field.items() if k != "description"} == expected, name
        assert field["description"].startswith(prop["description"]), name
    assert set(LIST_FIELDS) == {"language", "keywords"}
    for name in LIST_FIELDS:
        assert form["properties"][name]["description"].endswith(
            "In a form: repeat the field, or send one comma-separated value or a JSON list."
        )
    assert form["properties"]["keywords"]["maxItems"] == 10
    assert form["properties"]["max_length"]["minimum"] == 20
    assert form["properties"]["context"] == {
        "title": "Context",
        "type": "string",
        "maxLength": 2000,
        "description": "Surrounding text, page title or caption. Used, never copied.",
    }


async def test_docs_describe_every_operation(service: Any) -> None:
    def norm(text: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", text)

    doc = norm((Path(__file__).parents[2] / "docs" / "api.md").read_text())
    paths = (await service.client.get("/openapi.json")).json()["paths"]
    missing = [path for path in paths if norm(path) not in doc]
    assert missing == []
