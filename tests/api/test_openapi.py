"""The OpenAPI document: exactly the public operations, each with its documented answers, clean
operation ids for generated clients, every error a problem, and every ref resolving."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema_rs
from hypothesis import given, settings
from hypothesis import strategies as st

from alttext.accounts.service import normalise_email
from alttext.api.alt_text_input import LIST_FIELDS
from alttext.api.openapi import EMAIL_PATTERN, amount_schema
from alttext.billing.checkout import price_pack
from alttext.billing.schemas import CheckoutRequest
from alttext.describe.errors import AppError
from alttext.describe.languages import normalise_tag
from alttext.generation.schemas import LANGUAGE_TAG_SCHEMA, AltTextRequest

# Documented on every operation: with a request body (malformed, stalled, too large, invalid,
# or over the memory budget), with an API key (none or a bad one, over the rate limit, the
# database down), and without one but with the database (sign-up, Stripe's events).
BODY = {400, 408, 413, 422, 503}
AUTH = {401, 429, 503}
ANY = {431}  # a request head over ALTTEXT_MAX_HEADER_BYTES, whatever the operation
# (method, path) -> (operationId, documented response statuses)
OPERATIONS: dict[tuple[str, str], tuple[str, set[int]]] = {
    ("GET", "/healthz"): ("healthz", {200}),
    ("GET", "/readyz"): ("readyz", {200, 503}),
    ("GET", "/v1/models"): ("list_models", {200} | AUTH),
    ("POST", "/v1/alt-text"): (
        "create_alt_text",
        {200, 402, 403, 409, 415, 502, 504} | BODY | AUTH,
    ),
    ("POST", "/v1/alt-text/batch"): ("create_batch", {200, 403, 409, 415} | BODY | AUTH),
    ("GET", "/v1/account"): ("get_account", {200, 404} | AUTH),
    ("PATCH", "/v1/account"): ("update_account", {200} | BODY | AUTH),
    ("DELETE", "/v1/account"): ("erase_account", {200} | BODY | AUTH),
    ("GET", "/v1/account/export"): ("export_account_data", {200} | AUTH),
    ("POST", "/v1/account/email/confirm"): ("confirm_email_change", {200, 409} | BODY | AUTH),
    ("POST", "/v1/account/restrict"): ("restrict_processing", {200} | AUTH),
    ("DELETE", "/v1/account/restrict"): ("lift_restriction", {200} | AUTH),
    ("GET", "/v1/keys"): ("list_keys", {200} | AUTH),
    ("POST", "/v1/keys"): ("create_key", {201} | BODY | AUTH),
    ("DELETE", "/v1/keys/{key_id}"): ("revoke_key", {204, 404, 422} | AUTH),
    ("GET", "/v1/usage"): ("get_usage", {200, 422} | AUTH),
    ("POST", "/v1/billing/checkout"): ("create_checkout", {200, 403, 409} | BODY | AUTH),
    ("GET", "/v1/billing/transactions"): ("list_transactions", {200, 400, 422} | AUTH),
    ("POST", "/webhooks/stripe"): ("receive_stripe_event", {200} | BODY),
    ("POST", "/v1/jobs"): ("create_job", {202, 403, 409, 415} | BODY | AUTH),
    ("GET", "/v1/jobs"): ("list_jobs", {200, 400, 422} | AUTH),
    ("GET", "/v1/jobs/{job_id}"): ("get_job", {200, 404, 422} | AUTH),
    ("GET", "/v1/jobs/{job_id}/results"): ("job_results", {200, 400, 404, 422} | AUTH),
    ("DELETE", "/v1/jobs/{job_id}"): ("cancel_job", {200, 404, 422} | AUTH),
    ("GET", "/v1/webhooks/secret"): ("get_webhook_secret", {200} | AUTH),
    ("POST", "/v1/webhooks/secret/rotate"): ("rotate_webhook_secret", {200} | AUTH),
    ("GET", "/v1/webhooks/deliveries"): ("list_webhook_deliveries", {200, 400, 422} | AUTH),
    ("POST", "/v1/signup"): ("sign_up", {202, 429} | BODY),
    ("POST", "/v1/signup/verify"): ("verify_signup", {201, 429} | BODY),
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
        assert {int(s) for s in operation["responses"]} == statuses | ANY, key


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


# --- the document states what the code checks ----------------------------------------------------

SPENDING = [
    ("POST", "/v1/alt-text"),
    ("POST", "/v1/alt-text/batch"),
    ("POST", "/v1/jobs"),
    ("POST", "/v1/billing/checkout"),
]
ID_PARAMETERS = {
    ("GET", "/v1/jobs/{job_id}", "job_id"): "job",
    ("DELETE", "/v1/jobs/{job_id}", "job_id"): "job",
    ("GET", "/v1/jobs/{job_id}/results", "job_id"): "job",
    ("GET", "/v1/jobs/{job_id}/results", "starting_after"): "item",
    ("GET", "/v1/jobs", "starting_after"): "job",
    ("DELETE", "/v1/keys/{key_id}", "key_id"): "key",
    ("GET", "/v1/billing/transactions", "starting_after"): "txn",
    ("GET", "/v1/webhooks/deliveries", "starting_after"): "wha",
}


def _parameter(operation: dict[str, Any], name: str) -> dict[str, Any]:
    (found,) = [p for p in operation["parameters"] if p["name"] == name]
    return found


async def test_parameters_state_their_shapes(service: Any) -> None:
    operations = _operations(await _doc(service))
    for key in SPENDING:
        header = _parameter(operations[key], "Idempotency-Key")
        assert header["schema"] == {
            "type": "string",
            "pattern": idempotency_key_pattern(),
            "title": "Idempotency-Key",
            "description": header["description"],
        }, key
    for (method, path, name), prefix in ID_PARAMETERS.items():
        schema = _parameter(operations[(method, path)], name)["schema"]
        assert schema["pattern"] == f"^{prefix}_[0-9a-z]{{26}}$", (path, name)
    for key, operation in operations.items():
        for parameter in operation.get("parameters", []):
            # Left out when not given: a query or header parameter is never null.
            assert {"type": "null"} not in parameter["schema"].get("anyOf", []), (key, parameter)
    usage = operations[("GET", "/v1/usage")]
    for name in ("from", "to"):
        assert _parameter(usage, name)["schema"]["format"] == "date"
    assert _parameter(operations[("POST", "/webhooks/stripe")], "Stripe-Signature")["required"]


async def test_bodies_state_the_rules_across_fields(service: Any) -> None:
    doc = await _doc(service)
    schemas = doc["components"]["schemas"]
    one_image = [
        {"required": ["image"], "properties": {"image": {"type": "string"}}},
        {"required": ["image_url"], "properties": {"image_url": {"type": "string"}}},
    ]
    assert schemas["AltTextRequest"]["oneOf"] == one_image
    assert schemas["BatchItem"]["oneOf"] == one_image
    assert schemas["AltTextMultipartRequest"]["oneOf"] == [
        {"required": ["image"], "properties": {"image_url": False}},
        {"required": ["image_url"], "properties": {"image": False}},
    ]
    assert [b["required"] for b in schemas["JobCreate"]["oneOf"]] == [["items"], ["source"]]
    signup = schemas["SignupIn"]["properties"]
    for name in ("accept_terms", "accept_privacy", "confirm_age_18"):
        assert signup[name]["const"] is True, name
    assert signup["email"]["pattern"] == EMAIL_PATTERN
    assert {"type": "null"} in schemas["AccountPatch"]["properties"]["email"]["anyOf"]
    amount = schemas["CheckoutRequest"]["properties"]["amount_usd"]["anyOf"]
    assert amount[0] == {"type": "number", "minimum": 5.0, "maximum": 10_000, "multipleOf": 0.01}
    jobs = doc["paths"]["/v1/jobs"]["post"]["responses"]
    assert jobs["202"]["headers"]["Location"]["required"] is True
    for path_item in doc["paths"].values():
        for operation in path_item.values():
            if "429" in operation["responses"]:
                assert operation["responses"]["429"]["headers"]["Retry-After"]["required"]


def idempotency_key_pattern() -> str:
    from alttext import idempotency

    return idempotency._KEY.pattern


# Characters whose lower case is longer (İ -> i̇) would make a 64-character local part longer.
TEXT = st.text(st.characters(codec="utf-8").filter(lambda c: len(c.lower()) == 1), max_size=80)


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.one_of(
        TEXT,
        st.from_regex(EMAIL_PATTERN, fullmatch=True),
        st.builds(lambda a, b: f"{a}@{b}", TEXT, TEXT),
    )
)
def test_the_email_pattern_is_what_the_code_takes(value: str) -> None:
    try:
        normalise_email(value)
        taken = True
    except AppError:
        taken = False
    assert bool(re.match(EMAIL_PATTERN, value)) == taken, value


@settings(max_examples=300, deadline=None, database=None)
@given(
    st.one_of(
        TEXT,
        st.from_regex(LANGUAGE_TAG_SCHEMA["pattern"], fullmatch=True),
        st.from_regex(r"\A\s?[A-Za-z]{2,3}(-[A-Za-z0-9]{2,4}){0,2}\s?\Z"),
    )
)
def test_the_language_pattern_is_what_the_code_takes(value: str) -> None:
    taken = normalise_tag(value) is not None
    assert bool(re.match(LANGUAGE_TAG_SCHEMA["pattern"], value)) == taken, value


@settings(max_examples=200, deadline=None, database=None)
@given(
    st.one_of(
        st.from_regex(amount_schema(5.0)["anyOf"][1]["pattern"], fullmatch=True),
        st.integers(0, 12_000).map(lambda cents: f"{cents / 100:.2f}"),
        st.integers(0, 1_200_000).map(lambda cents: cents / 100),
    )
)
def test_the_amount_schema_is_what_checkout_takes(value: str | float) -> None:
    try:
        price_pack(
            CheckoutRequest(amount_usd=value).amount_usd, price_per_image_usd=0.03, min_usd=5.0
        )
        taken = True
    except (AppError, ValueError):
        taken = False
    schema = amount_schema(5.0)
    described = jsonschema_rs.validator_for(schema).is_valid(value)
    # Numbers exactly; strings the pattern describes are taken (the code also takes spellings
    # such as "05" or " 5" that the document does not advertise).
    if isinstance(value, float) or described:
        assert described == taken, value
