"""``POST /v1/alt-text``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Request, Response

from alttext import idempotency
from alttext.api.alt_text_input import parse_alt_text_request
from alttext.api.openapi import MULTIPART_REQUEST, REF, idempotency_key_header, problems
from alttext.api.routes import ResourceRoute
from alttext.generation.schemas import AltTextResponse
from alttext.generation.service import generate
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.http.replay import kept_answer, spending_response
from alttext.ids import new_id

router = APIRouter(prefix="/v1", tags=["alt text"], route_class=ResourceRoute)

_REQUEST_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": {"$ref": REF.format(model="AltTextRequest")}},
        "multipart/form-data": {"schema": {"$ref": REF.format(model=MULTIPART_REQUEST)}},
    },
}
# 401, 408, 413 and 429 are documented on every authenticated operation with a body.
_ERRORS = problems(
    400,
    402,
    403,
    409,
    415,
    422,
    502,
    503,
    504,
    meanings={
        400: "Malformed body, unusable image (invalid_image), or an image_url that could not "
        "be fetched or was refused (image_fetch_failed)"
    },
)


@router.post(
    "/alt-text",
    response_model=AltTextResponse,
    summary="Generate alt text for one image",
    responses=_ERRORS,
    openapi_extra={"requestBody": _REQUEST_BODY},
)
async def create_alt_text(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Retry safely: the same key and body return the first result, charged once. "
            "Kept 24 hours."
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
        lambda: generate(
            services,
            principal,
            parsed.options,
            parsed.image,
            request_id=request_id,
            keep=kept_answer(request_id, parsed.options),
        ),
    )
