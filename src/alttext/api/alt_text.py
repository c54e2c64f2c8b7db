"""``POST /v1/alt-text``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response

from alttext import idempotency
from alttext.api.alt_text_input import parse_alt_text_request
from alttext.generation.schemas import AltTextResponse, Problem
from alttext.generation.service import generate
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.http.replay import spending_response
from alttext.ids import new_id

router = APIRouter(prefix="/v1", tags=["alt text"])

_MULTIPART_SCHEMA = {
    "type": "object",
    "required": [],
    "properties": {
        "image": {"type": "string", "format": "binary", "description": "The image file."},
        "image_url": {"type": "string"},
        "context": {"type": "string", "maxLength": 2000},
        "role": {
            "type": "string",
            "enum": ["auto", "informative", "decorative", "functional", "text", "complex"],
        },
        "link_target": {"type": "string"},
        "language": {"type": "string", "description": "A BCP 47 tag; repeat for several."},
        "max_length": {"type": "integer", "minimum": 20, "maximum": 1000},
        "keywords": {"type": "string", "description": "Comma-separated, or repeat the field."},
        "long_description": {"type": "boolean"},
        "model": {"type": "string"},
    },
}

_ERRORS = {
    status: {"model": Problem, "content": {"application/problem+json": {}}, "description": d}
    for status, d in {
        400: "Invalid image, image_fetch_failed or malformed body",
        401: "Missing or invalid API key",
        413: "Image or body too large",
        415: "Unsupported image or body format",
        422: "Invalid fields",
        502: "The model provider failed",
        503: "The model provider or the service is unavailable",
        504: "The model provider timed out",
    }.items()
}


@router.post(
    "/alt-text",
    response_model=AltTextResponse,
    summary="Generate alt text for one image",
    responses=_ERRORS,  # type: ignore[arg-type]
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/AltTextRequest"}},
                "multipart/form-data": {"schema": _MULTIPART_SCHEMA},
            },
        }
    },
)
async def create_alt_text(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            description="Retry safely: the same key and body return the first result, "
            "charged once. Kept 24 hours.",
        ),
    ] = None,
) -> Response:
    key = idempotency.validate_key(idempotency_key)
    parsed = await parse_alt_text_request(request, services.settings.max_image_bytes)
    request_id = new_id("req")
    return await spending_response(
        request,
        services,
        principal.account_id,
        key,
        lambda: idempotency.request_fingerprint(
            parsed.options.model_dump(mode="json", exclude={"image"}), parsed.image
        ),
        lambda: generate(services, principal, parsed.options, parsed.image, request_id=request_id),
    )
