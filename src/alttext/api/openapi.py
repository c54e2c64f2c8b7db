"""The OpenAPI document: the bodies that routes parse by hand, every constraint the code enforces,
and every error as a problem.

Operation ids are the route functions' names (``generate_unique_id_function`` in app.py), so
generated clients read ``create_alt_text``, ``list_keys``, ``get_usage``.

The document states what the code enforces, so that a request valid by the schema is accepted
and one invalid by it refused (tests/api/test_fuzz_openapi.py checks both with Schemathesis):
id patterns, the Idempotency-Key's shape, e-mail addresses, the consents that must be true, the
amounts Checkout takes. Where the code refuses with a status of its own rather than FastAPI's 422
(a malformed id is 404, a bad Idempotency-Key 400), the constraint is documented with
``json_schema_extra`` and checked by the code, not by FastAPI.
"""

from __future__ import annotations

import copy
import math
from decimal import Decimal
from typing import Any

from fastapi import FastAPI, Header
from fastapi.openapi.utils import get_openapi

from alttext.api.alt_text_input import LIST_FIELDS
from alttext.config import Settings
from alttext.errors import PROBLEM_JSON
from alttext.generation.schemas import SPACE, AltTextRequest, BatchRequest, Problem
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
    431: "The request line and headers are larger than the server reads "
    "(ALTTEXT_MAX_HEADER_BYTES); the connection is closed",
    502: "The model provider failed",
    503: "A dependency (database, model provider, Stripe) is unavailable, or the server's "
    "memory budget for request bodies is spent; retry after Retry-After seconds",
    504: "The model provider timed out",
}
# Documented on every operation (any request's head may be too large: alttext.http.guard) /
# that has a request body / that needs an API key / that reads the database without one.
_ANY_ERRORS = (431,)
_BODY_ERRORS = (400, 408, 413, 422, 503)
_AUTH_ERRORS = (401, 429, 503)
_RETRY_AFTER = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "string", "pattern": "^[0-9]+$"},
}

# alttext.idempotency validates the header (400 when malformed): 1-255 visible ASCII characters.
IDEMPOTENCY_KEY_PATTERN = r"^[\x21-\x7e]{1,255}$"
# The shape of every id the service hands out (alttext.ids.new_id).
ID_CHARS = 26
# accounts.service.normalise_email, surrounding whitespace (stripped there) included.
EMAIL_PATTERN = f"^[{SPACE}]*[^@{SPACE}]{{1,64}}@[^@{SPACE}]+\\.[^@{SPACE}]{{2,}}[{SPACE}]*$"
MAX_EMAIL_CHARS = 320
# billing.checkout: whole cents, from ALTTEXT_MIN_PURCHASE_USD to this.
MAX_PURCHASE_USD = 10_000


def id_pattern(prefix: str) -> str:
    """The pattern of ``prefix_…`` ids: ``^job_[0-9a-z]{26}$``."""
    return rf"^{prefix}_[0-9a-z]{{{ID_CHARS}}}$"


def id_schema(prefix: str) -> dict[str, Any]:
    """``json_schema_extra`` for a parameter holding a ``prefix_…`` id (a malformed one is the
    route's own answer, 404 or 400, never FastAPI's 422)."""
    return {"pattern": id_pattern(prefix)}


# A parameter the code refuses to go without, though it reads it as optional to answer its own
# status (400, not FastAPI's 422): ``json_schema_extra=REQUIRED`` marks it required in the document.
_REQUIRED_MARK = "x-alttext-required"
REQUIRED: dict[str, Any] = {_REQUIRED_MARK: True}


def idempotency_key_header(description: str) -> Any:
    """The ``Idempotency-Key`` header parameter (checked by ``idempotency.validate_key``)."""
    return Header(
        alias="Idempotency-Key",
        description=description,
        json_schema_extra={"pattern": IDEMPOTENCY_KEY_PATTERN},
    )


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
        # Exactly one of the file and image_url (alt_text_input.parse_alt_text_request): the
        # other absent (the schema `false` rules a property out whatever its value).
        "oneOf": [
            {"required": ["image"], "properties": {"image_url": False}},
            {"required": ["image_url"], "properties": {"image": False}},
        ],
        "additionalProperties": json_schema.get("additionalProperties", False),
    }


def _integer_at_least(low: int, digits: int) -> list[str]:
    """Regex alternatives for the integers of exactly ``digits`` digits that are >= ``low``."""
    text = str(low)
    if len(text) < digits:
        return [f"[1-9][0-9]{{{digits - 1}}}" if digits > 1 else "[1-9]"]
    if len(text) > digits:
        return []
    out = [text]  # low itself
    for i, ch in enumerate(text):
        if ch == "9":
            continue
        rest = len(text) - i - 1
        out.append(text[:i] + f"[{int(ch) + 1}-9]" + (f"[0-9]{{{rest}}}" if rest else ""))
    return out


def amount_schema(min_usd: float) -> dict[str, Any]:
    """``amount_usd`` as ``billing.checkout.price_pack`` takes it: a JSON number or a decimal
    string, whole cents, from the minimum purchase to MAX_PURCHASE_USD."""
    whole = math.ceil(Decimal(str(min_usd)))
    top = len(str(MAX_PURCHASE_USD)) - 1  # integer parts below the maximum have up to 4 digits
    integers = [alt for d in range(1, top + 1) for alt in _integer_at_least(whole, d)]
    # A fractional minimum (4.5) is stated from the next whole dollar: a string of 4.75 is
    # taken by the code but not described here; a number is described exactly.
    pattern = (
        rf"^(?:(?:{'|'.join(integers)})(?:\.[0-9]{{1,2}})?|{MAX_PURCHASE_USD}(?:\.00?)?)$"
        if integers
        else rf"^{MAX_PURCHASE_USD}(?:\.00?)?$"
    )
    return {
        "anyOf": [
            {
                "type": "number",
                "minimum": float(min_usd),
                "maximum": MAX_PURCHASE_USD,
                "multipleOf": 0.01,
            },
            {"type": "string", "pattern": pattern},
        ]
    }


def _email(nullable: bool) -> dict[str, Any]:
    text = {"type": "string", "maxLength": MAX_EMAIL_CHARS, "pattern": EMAIL_PATTERN}
    return {"anyOf": [text, {"type": "null"}]} if nullable else text


def _state_model_constraints(components: dict[str, Any], settings: Settings) -> None:
    """Constraints the code enforces on bodies whose models live below the API (privacy,
    billing) and say less in their own JSON Schema."""
    signup = components["SignupIn"]["properties"]
    signup["email"].update(_email(nullable=False))
    for name in ("accept_terms", "accept_privacy", "confirm_age_18"):
        signup[name]["const"] = True  # anything else is 422: no account without it
    patch = components["AccountPatch"]["properties"]["email"]
    patch.pop("anyOf", None)
    patch.update(_email(nullable=True))
    checkout = components["CheckoutRequest"]["properties"]["amount_usd"]
    checkout.update(amount_schema(settings.min_purchase_usd))


def _parameters_are_absent_not_null(operation: dict[str, Any]) -> None:
    """An optional query or header parameter is left out, never sent as null."""
    for parameter in operation.get("parameters", []):
        schema = parameter.get("schema", {})
        if schema.pop(_REQUIRED_MARK, False):
            parameter["required"] = True
        branches = [b for b in schema.get("anyOf", []) if b != {"type": "null"}]
        if "anyOf" in schema and len(branches) == 1:
            del schema["anyOf"]
            schema.update(branches[0])
            if schema.get("default", 0) is None:
                del schema["default"]


def _document_errors(operation: dict[str, Any], *, public: bool) -> None:
    responses: dict[str, Any] = operation["responses"]
    generic: list[int] = list(_ANY_ERRORS)
    if "requestBody" in operation:
        generic += _BODY_ERRORS
    if operation.get("security"):
        generic += _AUTH_ERRORS
    elif public:
        generic.append(503)  # no key, but the database: sign-up, Stripe's events
    for status, entry in problems(*generic).items():
        responses.setdefault(str(status), entry)
    invalid = responses.get("422")
    if invalid is not None and "HTTPValidationError" in str(invalid):
        # FastAPI's own shape; our handler answers every validation error as a problem.
        responses["422"] = problems(422)[422]
    if "429" in responses:
        responses["429"].setdefault("headers", {})["Retry-After"] = dict(_RETRY_AFTER)


def _referenced(node: Any) -> set[str]:
    if isinstance(node, dict):
        ref = node.get("$ref")
        found = {ref.rsplit("/", 1)[-1]} if isinstance(ref, str) else set()
        return found.union(*(_referenced(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_referenced(v) for v in node))
    return set()


def _settings(app: FastAPI) -> Settings:
    services = getattr(app.state, "services", None)
    settings = getattr(services, "settings", None)
    return settings if isinstance(settings, Settings) else Settings()


# Operations that answer without touching the database.
_NO_DATABASE = {"/healthz", "/readyz"}


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
        _state_model_constraints(components, _settings(app))
        for path, path_item in schema["paths"].items():
            for operation in path_item.values():
                _parameters_are_absent_not_null(operation)
                _document_errors(operation, public=path not in _NO_DATABASE)
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
