"""Running a credit-spending call: replayed under an ``Idempotency-Key`` (see
``alttext.idempotency``), and cancelled, so not charged, when the client disconnects."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.requests import Request

from alttext import idempotency
from alttext.billing import credits
from alttext.describe.types import Description
from alttext.errors import (
    PROBLEM_JSON,
    AppError,
    ServiceUnavailable,
    problem_fields,
    request_id_of,
)
from alttext.generation.schemas import AltTextRequest
from alttext.generation.service import KeepResult, Superseded, to_response
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
    """Run ``call`` under the key. While it runs, ``idempotency.current_claim()`` is its claim:
    code that charges keeps its answer in the charging transaction (``kept_answer``), so an
    answer that was paid for is replayed even if this process dies before ``finish``."""
    claim = await idempotency.claim(
        services.sessions, account_id=account_id, key=key, request_hash=fingerprint
    )
    if isinstance(claim, idempotency.Replay):
        return replayed(claim, headers)
    token = idempotency.set_current(claim)
    try:
        result = await call()
    except AppError as exc:
        body = problem_fields(exc, request_id_of(request))
        await asyncio.shield(
            idempotency.finish(services.sessions, claim, status_code=exc.http_status, body=body)
        )
        raise
    except Superseded as exc:
        # Our claim was taken over after its lock expired (nothing charged): the other run answers.
        raise ServiceUnavailable(
            "A request with this Idempotency-Key is still running; retry shortly.", retry_after=5
        ) from exc
    except BaseException:
        await asyncio.shield(idempotency.abandon(services.sessions, claim))
        raise
    finally:
        idempotency.reset_current(token)
    body_json = result.model_dump(mode="json")
    await asyncio.shield(
        idempotency.finish(services.sessions, claim, status_code=status_code, body=body_json)
    )
    return JSONResponse(body_json, status_code, headers=headers(body_json) if headers else None)


def replayed(replay: idempotency.Replay, headers: Headers | None = None) -> JSONResponse:
    media = PROBLEM_JSON if replay.status_code >= 400 else "application/json"
    extra = headers(replay.body) if headers and replay.status_code < 400 else {}
    return JSONResponse(
        replay.body,
        status_code=replay.status_code,
        media_type=media,
        headers={**extra, "Idempotent-Replayed": "true"},
    )


async def keep_created(session: AsyncSession, answer: BaseModel, *, status_code: int) -> None:
    """Record a created resource's answer (a job) under the current Idempotency-Key, in the
    transaction that creates it; raises (creating nothing) if the key was taken over."""
    claim = idempotency.current_claim()
    if claim is None:
        return
    body = answer.model_dump(mode="json")
    if not await idempotency.keep(session, claim, status_code=status_code, body=body):
        raise ServiceUnavailable(
            "A request with this Idempotency-Key is still running; retry shortly.", retry_after=5
        )


def kept_answer(
    request_id: str,
    req: AltTextRequest,
    *,
    part: str | None = None,
    wrap: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
) -> KeepResult | None:
    """Generation's ``keep`` hook for a call under an Idempotency-Key (None without one): the
    answer is recorded in the transaction that charges for it. ``part`` names one of several
    charges of the call (a batch item), ``wrap`` shapes the answer as the call returns it.

    The kept answer is rebuilt from what the hook sees; it is replayed only if this process
    dies before ``finish`` stores the answer actually sent (which differs at most in
    ``timing_ms.total``)."""
    claim = idempotency.current_claim()
    if claim is None:
        return None
    started = time.perf_counter()

    async def keep(session: AsyncSession, description: Description, charged: int) -> bool:
        remaining = await credits.balance(session, claim.account_id)
        answer = to_response(
            request_id,
            description,
            charged=charged,
            credits_remaining=remaining,
            total_ms=int((time.perf_counter() - started) * 1000),
            # Free answers are cache hits, but for a caller's own "decorative" (no model).
            cached=charged == 0 and req.role != "decorative",
        ).model_dump(mode="json")
        body = wrap(answer) if wrap is not None else answer
        if part is None:
            return await idempotency.keep(session, claim, status_code=200, body=body)
        return await idempotency.keep_part(session, claim, part, status_code=200, body=body)

    return keep
