"""One generation for an authenticated caller: input, engine, response.

Kept out of the route so the batch endpoint and the queue use the same path.
"""

from __future__ import annotations

import time

from alttext.accounts.service import Principal
from alttext.api.schemas import (
    AltTextRequest,
    AltTextResponse,
    ImageOut,
    TimingOut,
    UsageOut,
)
from alttext.describe.fetch import fetch_image
from alttext.describe.types import DescribeOptions, Description
from alttext.ids import new_id
from alttext.services import Services


def describe_options(req: AltTextRequest) -> DescribeOptions:
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
    description: Description,
    *,
    credits: int | None,
    credits_remaining: int | None,
    total_ms: int,
) -> AltTextResponse:
    d = description
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
            credits=credits,
            input_tokens=d.usage.input_tokens,
            output_tokens=d.usage.output_tokens,
            upstream_cost_usd=d.usage.upstream_cost_usd,
        ),
        credits_remaining=credits_remaining,
        timing_ms=TimingOut(
            total=total_ms, prepare=d.timing.prepare_ms, upstream=d.timing.upstream_ms
        ),
    )


async def generate(
    services: Services,
    principal: Principal,
    req: AltTextRequest,
    image: bytes | None,
) -> AltTextResponse:
    started = time.perf_counter()
    runtime = services.runtime
    if image is None:
        assert req.image_url is not None  # the request model guarantees one of the two
        image = await fetch_image(req.image_url, runtime.http, runtime.fetch_limits)
    async with services.inflight.hold(len(image)):
        description = await runtime.engine.describe(image, describe_options(req))
    # The bytes are dropped here; only sizes and the description leave this function.
    del image
    total_ms = int((time.perf_counter() - started) * 1000)
    return to_response(
        new_id("req"), description, credits=None, credits_remaining=None, total_ms=total_ms
    )
