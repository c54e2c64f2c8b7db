"""The OpenAPI document: the bodies that routes parse by hand, and every error as a problem.

Operation ids are the route functions' names (``generate_unique_id_function`` in app.py), so
generated clients read ``create_alt_text``, ``list_keys``, ``get_usage``.
"""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from alttext.api.alt_text_input import LIST_FIELDS
from alttext.errors import PROBLEM_JSON
from alttext.generation.schemas import AltTextRequest, BatchRequest, Problem
from alttext.jobs.schemas import JobCreate

REF = "#/components/schemas/{model}"
MULTIPART_REQUEST = "AltTextMultipartRequest"
_PROBLEM = {"$ref": REF.format(model="Problem")}

# What each error status means, wherever it is documented.
_MEANING = {
    400: "Malformed request: a body that is not JSON (or nests too deeply, or holds a number "
    "too long to read), a bad header or parameter, an unusable image",
    401: "Missing or invalid API key",
    402: "Not enough credits",
    403: "Processing is restricted for this account, or its paid use is suspended",
    404: "Not found",
    408: "The request body stalled for longer than the server waits (ALTTEXT_BODY_READ_TIMEOUT_S)",
    409: "Idempotency-Key reused with a different request",
    413: "Image or request body too large",
    415: "Unsupported image or body format",
    422: "Invalid or missing fields",
    429: "Too many requests; retry after Retry-After seconds",
    502: "The model provider failed",
    503: "A dependency (model provider, database, Stripe) is unavailable; see Retry-After",
    504: "The model provider timed out",
}
# Documented on every operation that has a request body / that needs an API key.
_BODY_ERRORS = (400, 408, 413, 422)
_AUTH_ERRORS = (401, 429)


def problems(
    *statuses: int, meanings: dict[int, str] | None = None
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` entries for problem+json answers; ``meanings`` overrides the texts."""
    return {
        status: {
            "description": (meanings or {}).get(status, _MEANING[status]),
            "content": {PROBLEM_JSON: {"schema": dict(_PROBLEM)}},
        }
        for status in statuses
    }


def _form_field(prop: dict[str, Any]) -> dict[str, Any]:
    """A JSON property as a form field: a field is absent rather than null."""
    out = {k: v for k, v in prop.items() if not (k == "default" and v is None)}
    branches = [b for b in out.pop("anyOf", []) if b != {"type": "null"}]
    if len(branches) == 1:
        out.update(branches[0])
    elif branches:
        out["anyOf"] = branches
    return out


def multipart_request_schema() -> dict[str, Any]:
    """The multipart form of ``AltTextRequest``: the same fields, constraints and descriptions;
    ``image`` is the uploaded file, list fields may repeat or be comma-separated."""
    json_schema = AltTextRequest.model_json_schema(ref_template=REF)
    properties: dict[str, Any] = {}
    for name, prop in json_schema["properties"].items():
        field = _form_field(copy.deepcopy(prop))
        if name == "image":
            field = {
                "title": prop.get("title", "Image"),
                "type": "string",
                "format": "binary",
                "description": "The image file (its format is read from its bytes).",
            }
        elif name in LIST_FIELDS:
            field["description"] = (
                f"{field.get('description', '')} In a form: repeat the field, or send one "
                "comma-separated value or a JSON list."
            ).strip()
        properties[name] = field
    return {
        "title": MULTIPART_REQUEST,
        "description": "POST /v1/alt-text as multipart/form-data: the file in field `image` "
        "(or `image_url`), the other fields of AltTextRequest as form fields.",
        "type": "object",
        "properties": properties,
        "additionalProperties": json_schema.get("additionalProperties", False),
    }


def _document_errors(operation: dict[str, Any]) -> None:
    responses: dict[str, Any] = operation["responses"]
    generic: list[int] = []
    if "requestBody" in operation:
        generic += _BODY_ERRORS
    if operation.get("security"):
        generic += _AUTH_ERRORS
    for status, entry in problems(*generic).items():
        responses.setdefault(str(status), entry)
    invalid = responses.get("422")
    if invalid is not None and "HTTPValidationError" in str(invalid):
        # FastAPI's own shape; our handler answers every validation error as a problem.
        responses["422"] = problems(422)[422]


def _referenced(node: Any) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref.rsplit("/", 1)[-1]} if isinstance(ref, str) else set()
        return found.union(*(_referenced(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_referenced(v) for v in node))
    return set()


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title,
            version=app.version,
            description=app.description,
            routes=app.routes,
        )
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        for model in (AltTextRequest, BatchRequest, JobCreate, Problem):
            body = model.model_json_schema(ref_template=REF)
            for name, definition in body.pop("$defs", {}).items():
                components.setdefault(name, definition)
            components[model.__name__] = body
        components[MULTIPART_REQUEST] = multipart_request_schema()
        for path_item in schema["paths"].values():
            for operation in path_item.values():
                _document_errors(operation)
        fastapi_own = ("HTTPValidationError", "ValidationError")
        used = _referenced(schema["paths"]).union(
            *(_referenced(v) for k, v in components.items() if k not in fastapi_own)
        )
        for name in fastapi_own:
            if name not in used:
                components.pop(name, None)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
