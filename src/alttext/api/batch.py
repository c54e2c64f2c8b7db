"""``POST /v1/alt-text/batch``: up to 50 images in one call, processed concurrently.

Each item goes through the same path as a single request (its own reservation, so only
successes are charged) and gets its own result or problem; one bad item never fails the batch.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

from fastapi import APIRouter, Request, Response
from pydantic import ValidationError

from alttext import idempotency
from alttext.accounts.service import Principal
from alttext.api.alt_text_input import decode_image, validation_problem
from alttext.api.openapi import idempotency_key_header, problems
from alttext.api.routes import ResourceRoute
from alttext.billing import credits
from alttext.errors import (
    INTERNAL_DETAIL,
    AppError,
    InternalError,
    InvalidRequest,
    UnsupportedMediaType,
    problem_fields,
    request_id_of,
)
from alttext.generation.schemas import (
    MAX_BATCH_ITEMS,
    AltTextOptions,
    AltTextRequest,
    BatchItemResult,
    BatchResponse,
    Problem,
)
from alttext.generation.service import Superseded, check_can_process, generate
from alttext.http.body import load_json, read_body
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.http.replay import kept_answer, spending_response
from alttext.ids import new_id
from alttext.process import Services

router = APIRouter(prefix="/v1", tags=["alt text"], route_class=ResourceRoute)
log = logging.getLogger("alttext.api.batch")

# Items of one batch in flight at once; the per-account cap still applies across requests.
BATCH_CONCURRENCY = 4
MAX_BATCH_BODY = 64 * 1024 * 1024
_ITEM_ID_MAX = 100


def _parse_batch(raw: bytes) -> tuple[list[tuple[str, dict[str, Any]]], dict[str, Any]]:
    payload = load_json(raw)
    if not isinstance(payload, dict) or set(payload) - {"items", "defaults"}:
        raise InvalidRequest("The body must be an object with 'items' and optional 'defaults'.")
    items, defaults = payload.get("items"), payload.get("defaults")
    if not isinstance(items, list) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise InvalidRequest(f"'items' must be a list of 1 to {MAX_BATCH_ITEMS} objects.")
    if defaults is None:
        defaults = {}
    if not isinstance(defaults, dict) or {"image", "image_url", "id"} & set(defaults):
        raise InvalidRequest("'defaults' must be an object of options (not images or ids).")
    try:
        # Bad defaults would fail every item: the whole batch is refused, as documented.
        AltTextOptions.model_validate(defaults)
    except ValidationError as exc:
        problem = validation_problem(exc)
        for error in problem.errors or ():
            error["field"] = ".".join(p for p in ("defaults", error.get("field")) if p)
        raise problem from None
    out: list[tuple[str, dict[str, Any]]] = []
    for index, item in enumerate(items):
        if not isinstance(item, dict):
            raise InvalidRequest(f"items[{index}] must be an object.")
        item_id = item.get("id")
        if not isinstance(item_id, str) or not 0 < len(item_id) <= _ITEM_ID_MAX:
            raise InvalidRequest(f"items[{index}].id must be a string of 1 to {_ITEM_ID_MAX}.")
        out.append((item_id, {k: v for k, v in item.items() if k != "id"}))
    if len({item_id for item_id, _ in out}) != len(out):
        raise InvalidRequest("Item ids must be unique within a batch.")
    return out, defaults


async def _run_item(
    services: Services,
    principal: Principal,
    request: Request,
    item_id: str,
    fields: dict[str, Any],
    gate: asyncio.Semaphore,
) -> BatchItemResult:
    try:
        try:
            options = AltTextRequest.model_validate(fields)
        except ValidationError as exc:
            raise validation_problem(exc) from None
        claim = idempotency.current_claim()
        if claim is not None and (
            kept := await idempotency.kept_part(services.sessions, claim, item_id)
        ):
            # An earlier run of this Idempotency-Key charged for this item: its answer stands.
            return BatchItemResult.model_validate(kept.body)
        image = await decode_image(options.image) if options.image is not None else None
        request_id = new_id("req")
        keep = kept_answer(
            request_id,
            options,
            part=item_id,
            wrap=lambda answer: {"id": item_id, "status": "succeeded", "result": answer},
        )
        async with gate:
            try:
                result = await generate(
                    services, principal, options, image, request_id=request_id, keep=keep
                )
            except Superseded:
                # Another run of this key kept the item first (its charge stands, ours was
                # released): answer with that run's result.
                assert claim is not None
                kept = await idempotency.kept_part(services.sessions, claim, item_id)
                if kept is None:
                    raise
                return BatchItemResult.model_validate(kept.body)
        return BatchItemResult(id=item_id, status="succeeded", result=result)
    except AppError as exc:
        problem = exc
    except Exception as exc:
        # Even a bug fails only its item (its credit is already released): raising would answer
        # 500 while the other items ran on unseen, and those that succeed would be charged.
        log.error(
            "unhandled error",
            extra={"request_id": request_id_of(request), "item_id": item_id},
            exc_info=exc,
        )
        problem = InternalError(INTERNAL_DETAIL)
    document = problem_fields(problem, request_id_of(request))
    return BatchItemResult(id=item_id, status="failed", error=Problem(**document))


async def _run_batch(
    services: Services, principal: Principal, request: Request, raw: bytes
) -> BatchResponse:
    items, defaults = _parse_batch(raw)
    gate = asyncio.Semaphore(BATCH_CONCURRENCY)
    results = await asyncio.gather(
        *(
            _run_item(services, principal, request, item_id, {**defaults, **fields}, gate)
            for item_id, fields in items
        )
    )
    ok = [r for r in results if r.result is not None]
    # Read once all items are done: a failing item may hold a reservation while others settle.
    async with services.sessions() as session:
        remaining = await credits.balance(session, principal.account_id)
    return BatchResponse(
        data=list(results),
        succeeded=len(ok),
        failed=len(results) - len(ok),
        credits_used=sum((r.result.usage.credits or 0) for r in ok if r.result),
        credits_remaining=remaining,
    )


@router.post(
    "/alt-text/batch",
    response_model=BatchResponse,
    summary="Generate alt text for up to 50 images; per-item results, only successes charged",
    responses=problems(403, 409, 415),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {"schema": {"$ref": "#/components/schemas/BatchRequest"}}
            },
        }
    },
)
async def create_batch(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header(
            "Retry safely: the same key and body return the first answer, charged once."
        ),
    ] = None,
) -> Response:
    key = idempotency.validate_key(idempotency_key)
    check_can_process(principal)
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise UnsupportedMediaType("Send a batch as application/json.")
    raw = await read_body(request, MAX_BATCH_BODY)
    return await spending_response(
        request,
        services,
        principal.account_id,
        key,
        lambda: idempotency.request_fingerprint({"batch": True}, raw),
        lambda: _run_batch(services, principal, request, raw),
    )
