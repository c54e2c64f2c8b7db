"""One generation for an authenticated caller: credits, limits, input, engine, metering.

Kept out of the route so batch requests and queued jobs go through the same path. The order
is the money's order: a slot and a reserved credit first (402 before any model call), the
model call outside any transaction, then one short transaction that settles or releases the
credit together with the usage event.

A caller's ``role: "decorative"`` is the exception: its answer is ``""`` by definition
(docs/alt-text-guide.md), so no model runs and nothing is charged. The image is still validated
from its header (a bad image fails the same way whatever the role, and the response reports its
size), then one usage event with status ``decorative`` and 0 credits meters the request. No
slot, no reservation: it costs the service a header read. A model that *classifies* an image as
decorative under ``auto`` is charged as usual: the model ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.service import Principal
from alttext.billing import credits
from alttext.db import transaction
from alttext.describe.errors import AppError
from alttext.describe.fetch import fetch_image
from alttext.describe.types import DescribeOptions, Description
from alttext.errors import AccountRestricted, Forbidden, InvalidRequest, RateLimited
from alttext.generation.schemas import (
    AltTextOptions,
    AltTextRequest,
    AltTextResponse,
    ImageOut,
    TimingOut,
    UsageOut,
)
from alttext.process import Services
from alttext.usage.models import UsageEvent

log = logging.getLogger("alttext.generation")

# The usage status of a caller's decorative request (answered by the engine without a model).
DECORATIVE_STATUS = "decorative"

# Runs inside the transaction that settles a charged generation (or meters a free one): a job
# item records its result there, so "charged" and "item succeeded" commit together or not at
# all. Returning False means the caller no longer owns the work (its lease was taken over): the
# credit is released in the same transaction and ``Superseded`` is raised.
KeepResult = Callable[[AsyncSession, Description, int], Awaitable[bool]]


class Superseded(Exception):
    """The result was not kept: another attempt owns the work now. Nothing was charged."""


def describe_options(req: AltTextOptions) -> DescribeOptions:
    return DescribeOptions(
        role=req.role,
        context=req.context,
        link_target=req.link_target,
        languages=req.languages,
        max_length=req.max_length,
        keywords=tuple(req.keywords),
        long_description=req.long_description,
        model=req.model,
    )


def to_response(
    request_id: str,
    d: Description,
    *,
    charged: int | None,
    credits_remaining: int | None,
    total_ms: int,
) -> AltTextResponse:
    return AltTextResponse(
        id=request_id,
        alt_text=d.alt_text,
        alt_texts=d.alt_texts,
        decorative=d.decorative,
        role=d.role,
        long_description=d.long_description,
        text_in_image=d.text_in_image,
        language=d.language,
        needs_review=d.needs_review,
        review_reasons=d.review_reasons,
        model=d.model,
        cached=False,
        image=ImageOut(
            width=d.image.width,
            height=d.image.height,
            format=d.image.format,
            sent_width=d.image.sent_width,
            sent_height=d.image.sent_height,
        ),
        usage=UsageOut(
            credits=charged,
            input_tokens=d.usage.input_tokens,
            output_tokens=d.usage.output_tokens,
            upstream_cost_usd=d.usage.upstream_cost_usd,
        ),
        credits_remaining=credits_remaining,
        timing_ms=TimingOut(
            total=total_ms, prepare=d.timing.prepare_ms, upstream=d.timing.upstream_ms
        ),
    )


def check_can_process(principal: Principal) -> None:
    if principal.restricted:
        raise AccountRestricted(
            "You restricted processing for this account (GDPR Art. 18). "
            "Lift the restriction to generate alt text again."
        )
    if principal.account_status != "active":
        raise Forbidden("Paid usage of this account is suspended; contact support.")


async def _check_model(services: Services, model: str | None) -> None:
    """``model`` must be one this deployment offers (GET /v1/models): otherwise a caller could
    route a flat-priced credit to any model the upstream sells, however expensive."""
    if model is None:
        return
    offered = [info.id for info in await services.runtime.provider.models()]
    if model not in offered:
        message = f"unknown model; use one of GET /v1/models ({', '.join(offered)})"
        raise InvalidRequest(
            "The request has invalid or missing fields.",
            errors=[{"field": "model", "message": message}],
        )


@asynccontextmanager
async def _generation_slot(services: Services, account_id: str) -> AsyncIterator[None]:
    limit = services.settings.max_concurrent_per_account
    token = await services.limiter.acquire(f"gen:{account_id}", limit)
    if token is None:
        raise RateLimited(
            f"At most {limit} generations may run at once for an account; retry when one ends.",
            retry_after=1,
        )
    try:
        yield
    finally:
        await asyncio.shield(services.limiter.release(f"gen:{account_id}", token))


def _event(
    request_id: str,
    principal: Principal,
    *,
    latency_ms: int,
    description: Description | None = None,
    error_code: str | None = None,
    history: tuple[str | None, str | None] | None = None,
    free: bool = False,
) -> UsageEvent:
    d = description
    status = "failed" if d is None else DECORATIVE_STATUS if free else "succeeded"
    return UsageEvent(
        id=request_id,
        account_id=principal.account_id,
        key_id=principal.key_id,
        status=status,
        error_code=error_code,
        model=d.model if d and not free else None,
        input_tokens=d.usage.input_tokens if d else None,
        output_tokens=d.usage.output_tokens if d else None,
        upstream_cost_usd=d.usage.upstream_cost_usd if d else None,
        credits=credits.CREDITS_PER_IMAGE if status == "succeeded" else 0,
        latency_ms=latency_ms,
        image_format=d.image.format if d else None,
        image_width=d.image.width if d else None,
        image_height=d.image.height if d else None,
        alt_text=history[0] if history else None,
        image_url=history[1] if history else None,
    )


async def _release(
    services: Services, request_id: str, principal: Principal, error_code: str, started: float
) -> None:
    latency = int((time.perf_counter() - started) * 1000)
    async with transaction(services.sessions) as session:
        await credits.release(session, request_id=request_id, note=error_code)
        session.add(_event(request_id, principal, latency_ms=latency, error_code=error_code))


async def _record_failure(
    services: Services, request_id: str, principal: Principal, error_code: str, started: float
) -> None:
    """A failed request that held no reservation (a decorative one): metered, never charged."""
    latency = int((time.perf_counter() - started) * 1000)
    async with transaction(services.sessions) as session:
        session.add(_event(request_id, principal, latency_ms=latency, error_code=error_code))


async def _settle(
    session: AsyncSession,
    request_id: str,
    principal: Principal,
    description: Description,
    latency_ms: int,
    history: tuple[str | None, str | None] | None,
) -> int:
    if not await credits.settle(session, request_id=request_id):
        # The reservation outlived its expiry and was released: the customer keeps the credit.
        log.warning("settled after expiry", extra={"request_id": request_id})
    session.add(
        _event(
            request_id, principal, latency_ms=latency_ms, description=description, history=history
        )
    )
    return await credits.balance(session, principal.account_id)


async def _describe(
    services: Services,
    req: AltTextRequest,
    image: bytes | None,
    on_failure: Callable[[str], Awaitable[None]],
) -> Description:
    """Fetch the image if given by URL and run the engine under the memory budget. On any
    failure ``on_failure(code)`` records it (shielded, so a cancelled request still books its
    release): an ``AppError``'s code, or ``aborted`` for a cancellation (client gone) or a bug."""
    runtime = services.runtime
    try:
        if image is None:
            assert req.image_url is not None  # the request model guarantees one of the two
            image = await fetch_image(req.image_url, runtime.http, runtime.fetch_limits)
        async with services.inflight.hold(len(image)):
            return await runtime.engine.describe(image, describe_options(req))
    except AppError as exc:
        await asyncio.shield(on_failure(exc.code))
        raise
    except BaseException:
        await asyncio.shield(on_failure("aborted"))
        raise
    finally:
        image = None  # drop our reference to the bytes as soon as the engine is done


async def _decorative(
    services: Services,
    principal: Principal,
    req: AltTextRequest,
    image: bytes | None,
    *,
    request_id: str,
    started: float,
    keep: KeepResult | None = None,
) -> AltTextResponse:
    """``role: "decorative"``: validate the image's header, answer ``""``, meter it for free."""
    description = await _describe(
        services,
        req,
        image,
        lambda code: _record_failure(services, request_id, principal, code, started),
    )
    image = None  # the engine is done with the bytes
    total_ms = int((time.perf_counter() - started) * 1000)
    history = ("", req.image_url) if principal.history_opt_in else None
    async with transaction(services.sessions) as session:
        session.add(
            _event(
                request_id,
                principal,
                latency_ms=total_ms,
                description=description,
                history=history,
                free=True,
            )
        )
        if keep is not None and not await keep(session, description, 0):
            raise Superseded(request_id)
        remaining = await credits.balance(session, principal.account_id)
    return to_response(
        request_id, description, charged=0, credits_remaining=remaining, total_ms=total_ms
    )


async def generate(
    services: Services,
    principal: Principal,
    req: AltTextRequest,
    image: bytes | None,
    *,
    request_id: str,
    keep: KeepResult | None = None,
    interactive: bool = True,
) -> AltTextResponse:
    """``interactive=False`` (a queued job's item) skips the per-account slot of API calls: jobs
    have their own cap (``ALTTEXT_JOB_CONCURRENCY_PER_ACCOUNT``), so a job never takes the
    slots of the same account's interactive requests."""
    started = time.perf_counter()
    check_can_process(principal)
    await _check_model(services, req.model)
    if req.role == "decorative":
        return await _decorative(
            services, principal, req, image, request_id=request_id, started=started, keep=keep
        )
    slot = (
        _generation_slot(services, principal.account_id)
        if interactive
        else contextlib.nullcontext()
    )
    async with slot:
        async with transaction(services.sessions) as session:
            await credits.reserve(
                session,
                account_id=principal.account_id,
                request_id=request_id,
                ttl_s=services.settings.reservation_ttl_s,
            )
        description = await _describe(
            services,
            req,
            image,
            lambda code: _release(services, request_id, principal, code, started),
        )
        image = None  # the engine is done with the bytes
    total_ms = int((time.perf_counter() - started) * 1000)
    history = (description.alt_text, req.image_url) if principal.history_opt_in else None
    async with transaction(services.sessions) as session:
        if keep is not None and not await keep(session, description, credits.CREDITS_PER_IMAGE):
            await credits.release(session, request_id=request_id, note="superseded")
            superseded = True
        else:
            superseded = False
            remaining = await _settle(
                session, request_id, principal, description, total_ms, history
            )
    if superseded:
        raise Superseded(request_id)
    return to_response(
        request_id,
        description,
        charged=credits.CREDITS_PER_IMAGE,
        credits_remaining=remaining,
        total_ms=total_ms,
    )
