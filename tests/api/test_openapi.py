"""The OpenAPI document describes every public endpoint and resolves."""

from __future__ import annotations

from typing import Any


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


async def test_openapi_lists_the_contract_and_every_ref_resolves(service: Any) -> None:
    doc = (await service.client.get("/openapi.json")).json()
    assert doc["openapi"].startswith("3.1")
    paths = doc["paths"]
    for path, method in [
        ("/v1/alt-text", "post"),
        ("/v1/models", "get"),
        ("/v1/account", "get"),
        ("/v1/keys", "get"),
        ("/v1/keys", "post"),
        ("/v1/keys/{key_id}", "delete"),
        ("/v1/usage", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
    ]:
        assert method in paths[path], (path, method)
    body = paths["/v1/alt-text"]["post"]["requestBody"]["content"]
    assert set(body) == {"application/json", "multipart/form-data"}
    schemas = doc["components"]["schemas"]
    request = schemas["AltTextRequest"]
    assert {"image", "image_url", "role", "language", "max_length"} <= set(request["properties"])
    assert request["additionalProperties"] is False
    headers = [p["name"] for p in paths["/v1/alt-text"]["post"]["parameters"]]
    assert "Idempotency-Key" in headers
    for ref in _refs(doc):
        name = ref.removeprefix("#/components/schemas/")
        assert name in schemas, ref
    security = doc["components"]["securitySchemes"]
    assert {"HTTPBearer", "APIKeyHeader"} <= set(security)


async def test_docs_describe_every_operation(service: Any) -> None:
    import re
    from pathlib import Path

    def norm(text: str) -> str:
        return re.sub(r"\{[^}]+\}", "{}", text)

    doc = norm((Path(__file__).parents[2] / "docs" / "api.md").read_text())
    paths = (await service.client.get("/openapi.json")).json()["paths"]
    missing = [path for path in paths if norm(path) not in doc]
    assert missing == []
