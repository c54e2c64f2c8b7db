"""One generation for an authenticated caller: credits, limits, input, engine, metering.

Kept out of the route so batch requests and queued jobs go through the same path. The order
is the money's order: the image is prepared (decoded, downscaled, hashed) under the memory
budget (the decode's share is given back once it is done; the prepared image's stays), and
its hash with the options keys the result cache (alttext.result_cache). A hit is
answered at once, free: no slot, no reservation, ``cached: true``, ``usage.credits: 0`` and a
usage event with status ``cached`` and 0 credits. A miss joins the key's single flight: the
leader takes a slot and reserves a credit (402 before any model call), calls the model outside
any transaction, then one short transaction settles or releases the credit together with the
usage event, and only once that committed is the answer stored in the cache. Identical
requests arriving meanwhile wait for the leader and are answered as hits (free); if the model
failed they fail with its error (never charged); if the leader stopped for a reason of its own
(cancelled, out of credits, rate-limited) they start over and one of them leads.

A caller's ``role: "decorative"`` is the exception: its answer is ``""`` by definition
(docs/alt-text-guide.md), so no model runs and nothing is charged. The image is still validated
from its header (a bad image fails the same way whatever the role, and the response reports its
size), then one usage event with status ``decorative`` and 0 credits meters the request. No
slot, no reservation, no cache: it costs the service a header read. A model that *classifies*
an image as decorative under ``auto`` is charged as usual: the model ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TypeVar

from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.service import Principal
from alttext.billing import credits
from alttext.db import in_transaction, transaction
from alttext.describe.errors import AppError
from alttext.describe.fetch import fetch_image
from alttext.describe.image import PreparedImage
from alttext.describe.types import DescribeOptions, Description, ImageInfo, Timing, Usage
from alttext.errors import AccountRestricted, Forbidden, InvalidRequest, RateLimited
from alttext.generation.metering import (
    CACHED_STATUS,
    DECORATIVE_STATUS,
    add_usage,
    record_failure,
    release_failed,
    settle,
    usage_event,
)
from alttext.generation.schemas import (
    AltTextOptions,
    AltTextRequest,
    AltTextResponse,
    ImageOut,
    TimingOut,
    UsageOut,
)
from alttext.process import Services
from alttext.result_cache import Flight, result_key

T = TypeVar("T")

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
    cached: bool = False,
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
        cached=cached,
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
        lambda code: record_failure(services, request_id, principal, code, started),
    )
    image = None  # the engine is done with the bytes
    total_ms = int((time.perf_counter() - started) * 1000)
    history = ("", req.image_url) if principal.history_opt_in else None
    async with transaction(services.sessions) as session:
        await add_usage(
            session,
            usage_event(
                request_id,
                principal,
                latency_ms=total_ms,
                description=description,
                history=history,
                status=DECORATIVE_STATUS,
            ),
        )
        if keep is not None and not await keep(session, description, 0):
            raise Superseded(request_id)
        remaining = await credits.balance(session, principal.account_id)
    return to_response(
        request_id, description, charged=0, credits_remaining=remaining, total_ms=total_ms
    )


async def _metered(on_failure: Callable[[str], Awaitable[None]], step: Awaitable[T]) -> T:
    """Run a step whose failure is metered: ``on_failure(code)`` (shielded, so a cancelled
    request still books it) with an ``AppError``'s code, or ``aborted`` for a cancellation
    (client gone) or a bug."""
    try:
        return await step
    except AppError as exc:
        await asyncio.shield(on_failure(exc.code))
        raise
    except BaseException:
        await asyncio.shield(on_failure("aborted"))
        raise


async def _prepare(
    services: Services,
    memory: AsyncExitStack,
    req: AltTextRequest,
    image: bytes | None,
    options: DescribeOptions,
) -> tuple[PreparedImage, int]:
    """Fetch the image if given by URL, take its share of the memory budget to decode it and
    prepare it. Then the hold shrinks to what the prepared image occupies (its bytes and its
    pixels), held by ``memory`` until the caller is done with it: the decode's room is free for
    the next request during the model call. The original bytes stay counted where the request
    body (or download) is, on the request's lease."""
    runtime = services.runtime
    if image is None:
        assert req.image_url is not None  # the request model guarantees one of the two
        image = await fetch_image(req.image_url, runtime.http, runtime.fetch_limits)
    held = await memory.enter_async_context(services.inflight.hold(len(image)))
    started = time.perf_counter()
    prepared = await runtime.engine.prepare(image, options)
    held.shrink(prepared_footprint(prepared))
    return prepared, int((time.perf_counter() - started) * 1000)


def prepared_footprint(prepared: PreparedImage) -> int:
    """The memory a prepared image keeps: its encoded bytes and its decoded pixels."""
    pixels = prepared.pixels
    return len(prepared.data) + pixels.width * pixels.height * len(pixels.getbands())


def _as_hit(d: Description, prepared: PreparedImage, prepare_ms: int) -> Description:
    """A cached (or another request's) answer as this request's: its own image's size, no
    tokens, no model time."""
    return dataclasses.replace(
        d,
        image=ImageInfo(
            width=prepared.width,
            height=prepared.height,
            format=prepared.format,
            sent_width=prepared.sent_width,
            sent_height=prepared.sent_height,
        ),
        usage=Usage(input_tokens=0, output_tokens=0, upstream_cost_usd=0.0),
        timing=Timing(prepare_ms=prepare_ms, upstream_ms=0),
        attempts=0,
        extra={},
    )


async def _answer_hit(
    services: Services,
    principal: Principal,
    req: AltTextRequest,
    description: Description,
    *,
    request_id: str,
    started: float,
    keep: KeepResult | None,
) -> AltTextResponse:
    """A hit: metered with status ``cached`` and 0 credits; a job item keeps it (charged 0)."""
    total_ms = int((time.perf_counter() - started) * 1000)
    history = (description.alt_text, req.image_url) if principal.history_opt_in else None
    async with transaction(services.sessions) as session:
        await add_usage(
            session,
            usage_event(
                request_id,
                principal,
                latency_ms=total_ms,
                description=description,
                history=history,
                status=CACHED_STATUS,
            ),
        )
        if keep is not None and not await keep(session, description, 0):
            raise Superseded(request_id)
        remaining = await credits.balance(session, principal.account_id)
    return to_response(
        request_id,
        description,
        charged=0,
        credits_remaining=remaining,
        total_ms=total_ms,
        cached=True,
    )


async def _run_model(
    services: Services,
    principal: Principal,
    prepared: PreparedImage,
    options: DescribeOptions,
    *,
    prepare_ms: int,
    flight: Flight,
    request_id: str,
    interactive: bool,
    on_failure: Callable[[str], Awaitable[None]],
) -> tuple[Description, int]:
    """The leader's model call: slot, reservation, then the engine outside any transaction.
    The model's own errors are shared with the waiters of the flight. Returns the answer and
    the balance the reservation left."""
    slot = (
        _generation_slot(services, principal.account_id)
        if interactive
        else contextlib.nullcontext()
    )
    async with slot:
        remaining = await in_transaction(
            services.sessions,
            lambda session: credits.reserve(
                session,
                account_id=principal.account_id,
                request_id=request_id,
                ttl_s=services.settings.reservation_ttl_s,
            ),
        )
        try:
            engine = services.runtime.engine
            description = await _metered(
                on_failure, engine.describe_prepared(prepared, options, prepare_ms=prepare_ms)
            )
            return description, remaining
        except AppError as exc:
            flight.share(exc)
            raise


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
    slots of the same account's interactive requests. A job item answered from the cache is
    kept with 0 credits."""
    started = time.perf_counter()
    check_can_process(principal)
    await _check_model(services, req.model)
    if req.role == "decorative":
        return await _decorative(
            services, principal, req, image, request_id=request_id, started=started, keep=keep
        )
    options = describe_options(req)
    settings = services.settings

    async def failed(code: str) -> None:
        await release_failed(services, request_id, principal, code, started)

    hit: Description | None = None
    async with AsyncExitStack() as flying:  # the single flight: left after the result is kept
        async with AsyncExitStack() as memory:  # the budget: held while the prepared image is
            prepared, prepare_ms = await _metered(
                failed, _prepare(services, memory, req, image, options)
            )
            image = None  # the engine is done with the bytes
            key = result_key(
                prepared.sha256,
                options,
                provider=settings.resolved_provider,
                models=settings.model_chain,
            )
            flight = await _metered(
                failed,
                flying.enter_async_context(services.result_cache.flight(principal.account_id, key)),
            )
            if flight.hit is not None:
                hit = _as_hit(flight.hit, prepared, prepare_ms)
            else:
                description, reserved_remaining = await _run_model(
                    services,
                    principal,
                    prepared,
                    options,
                    prepare_ms=prepare_ms,
                    flight=flight,
                    request_id=request_id,
                    interactive=interactive,
                    on_failure=failed,
                )
            del prepared  # the pixels go before the budget is released
        if hit is not None:
            return await _answer_hit(
                services, principal, req, hit, request_id=request_id, started=started, keep=keep
            )
        total_ms = int((time.perf_counter() - started) * 1000)
        history = (description.alt_text, req.image_url) if principal.history_opt_in else None

        async def keep_and_settle(session: AsyncSession) -> int | None:
            """The balance to report, or None when a job's item was no longer this attempt's."""
            if keep is not None and not await keep(session, description, credits.CREDITS_PER_IMAGE):
                await credits.release(session, request_id=request_id, note="superseded")
                return None
            return await settle(
                session,
                request_id,
                principal,
                description,
                total_ms,
                history,
                balance_after_reserve=reserved_remaining,
            )

        try:
            remaining = await in_transaction(services.sessions, keep_and_settle)
        except BaseException:
            # Nothing was kept (the database refused it, or the caller left): the attempt is
            # free now, not when its reservation expires minutes later.
            await asyncio.shield(failed("aborted"))
            raise
        if remaining is None:
            raise Superseded(request_id)
        await flight.store(description)  # committed and charged: now the answer is shared
    return to_response(
        request_id,
        description,
        charged=credits.CREDITS_PER_IMAGE,
        credits_remaining=remaining,
        total_ms=total_ms,
    )
