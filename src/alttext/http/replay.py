"""Running a credit-spending call: replayed under an ``Idempotency-Key`` (see
``alttext.idempotency``), and cancelled, so not charged, when the client disconnects."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.requests import Request

from alttext import idempotency
from alttext.errors import PROBLEM_JSON, AppError, problem_fields, request_id_of
from alttext.http.disconnect import unless_disconnected
from alttext.process import Services

# The headers of a success, computed from its JSON body (e.g. ``Location`` of a created job).
Headers = Callable[[Any], dict[str, str]]


async def spending_response(
    request: Request,
    services: Services,
    account_id: str,
    key: str | None,
    fingerprint: Callable[[], str],
    call: Callable[[], Awaitable[BaseModel]],
    *,
    status_code: int = 200,
    headers: Headers | None = None,
) -> JSONResponse:
    """Run a credit-spending call: replayable under an Idempotency-Key, and cancelled (so not
    charged) if the client disconnects before the answer is ready. ``status_code`` and
    ``headers`` (from the body) shape a success, the first time and on every replay."""

    async def run() -> JSONResponse:
        if key is None:
            body = (await call()).model_dump(mode="json")
            return JSONResponse(body, status_code, headers=headers(body) if headers else None)
        return await idempotent_call(
            services,
            account_id,
            key,
            fingerprint(),
            request,
            call,
            status_code=status_code,
            headers=headers,
        )

    return await unless_disconnected(request, run())


async def idempotent_call(
    services: Services,
    account_id: str,
    key: str,
    fingerprint: str,
    request: Request,
    call: Callable[[], Awaitable[BaseModel]],
    *,
    status_code: int = 200,
    headers: Headers | None = None,
) -> JSONResponse:
    replay = await idempotency.claim(
        services.sessions, account_id=account_id, key=key, request_hash=fingerprint
    )
    if replay is not None:
        media = PROBLEM_JSON if replay.status_code >= 400 else "application/json"
        extra = headers(replay.body) if headers and replay.status_code < 400 else {}
        return JSONResponse(
            replay.body,
            status_code=replay.status_code,
            media_type=media,
            headers={**extra, "Idempotent-Replayed": "true"},
        )
    try:
        result = await call()
    except AppError as exc:
        body = problem_fields(exc, request_id_of(request))
        await asyncio.shield(
            idempotency.finish(
                services.sessions,
                account_id=account_id,
                key=key,
                status_code=exc.http_status,
                body=body,
            )
        )
        raise
    except BaseException:
        await asyncio.shield(idempotency.abandon(services.sessions, account_id=account_id, key=key))
        raise
    body_json = result.model_dump(mode="json")
    await asyncio.shield(
        idempotency.finish(
            services.sessions,
            account_id=account_id,
            key=key,
            status_code=status_code,
            body=body_json,
        )
    )
    return JSONResponse(body_json, status_code, headers=headers(body_json) if headers else None)
