"""Metering a generation: the usage event of each outcome, and the short transactions that
book a failure (releasing its reservation, if any) or settle a charge.

Usage statuses: ``succeeded`` (the model ran; one credit), ``failed`` (never charged),
``decorative`` (the caller's decorative image: no model, 0 credits) and ``cached`` (answered from
the result cache or by an identical request's call: no model call, 0 credits).
"""

from __future__ import annotations

import logging
import time
from typing import Any, cast

from sqlalchemy import Table
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.service import Principal
from alttext.billing import credits
from alttext.db import deferred, transaction, utcnow
from alttext.describe.types import Description
from alttext.process import Services
from alttext.usage.models import UsageEvent

log = logging.getLogger("alttext.generation")

# The usage status of a caller's decorative request (answered by the engine without a model).
DECORATIVE_STATUS = "decorative"
# The usage status of a request answered from the result cache (or another request's call).
CACHED_STATUS = "cached"


_INSERT_USAGE = deferred(cast(Table, UsageEvent.__table__))


async def add_usage(session: AsyncSession, row: dict[str, Any]) -> None:
    """Write one usage event (a ``usage_event`` row) in the caller's transaction: a plain
    INSERT, as on a request's hot path no ORM unit of work is worth its cost."""
    conn = await session.connection()
    await conn.execute(_INSERT_USAGE, row)


def usage_event(
    request_id: str,
    principal: Principal,
    *,
    latency_ms: int,
    description: Description | None = None,
    error_code: str | None = None,
    history: tuple[str | None, str | None] | None = None,
    status: str | None = None,
) -> dict[str, Any]:
    """The usage event's row (for ``add_usage``). ``status`` defaults to ``succeeded`` with a
    description (charged), else ``failed``."""
    d = description
    status = status or ("failed" if d is None else "succeeded")
    return {
        "id": request_id,
        "account_id": principal.account_id,
        "key_id": principal.key_id,
        "created_at": utcnow(),
        "status": status,
        "error_code": error_code,
        "model": d.model if d and status != DECORATIVE_STATUS else None,
        "input_tokens": d.usage.input_tokens if d else None,
        "output_tokens": d.usage.output_tokens if d else None,
        "upstream_cost_usd": d.usage.upstream_cost_usd if d else None,
        "credits": credits.CREDITS_PER_IMAGE if status == "succeeded" else 0,
        "latency_ms": latency_ms,
        "image_format": d.image.format if d else None,
        "image_width": d.image.width if d else None,
        "image_height": d.image.height if d else None,
        "alt_text": history[0] if history else None,
        "image_url": history[1] if history else None,
    }


async def release_failed(
    services: Services, request_id: str, principal: Principal, error_code: str, started: float
) -> None:
    """A failed request: its reservation released (if it had one yet) and the failure metered,
    in one short transaction."""
    latency = int((time.perf_counter() - started) * 1000)
    async with transaction(services.sessions) as session:
        await credits.release(session, request_id=request_id, note=error_code)
        await add_usage(
            session, usage_event(request_id, principal, latency_ms=latency, error_code=error_code)
        )


async def record_failure(
    services: Services, request_id: str, principal: Principal, error_code: str, started: float
) -> None:
    """A failed request that held no reservation (a decorative one): metered, never charged."""
    latency = int((time.perf_counter() - started) * 1000)
    async with transaction(services.sessions) as session:
        await add_usage(
            session, usage_event(request_id, principal, latency_ms=latency, error_code=error_code)
        )


async def settle(
    session: AsyncSession,
    request_id: str,
    principal: Principal,
    description: Description,
    latency_ms: int,
    history: tuple[str | None, str | None] | None,
    *,
    balance_after_reserve: int | None = None,
) -> int:
    """Keep the reserved credit and meter the success; return the balance to report.

    The reservation took the credit from the balance, so the balance it left
    (``balance_after_reserve``) is the one reported, without reading it again; only a
    reservation that expired meanwhile (its credit given back) has the balance read anew."""
    settled = await credits.settle(session, request_id=request_id)
    if not settled:
        # The reservation outlived its expiry and was released: the customer keeps the credit.
        log.warning("settled after expiry", extra={"request_id": request_id})
    await add_usage(
        session,
        usage_event(
            request_id, principal, latency_ms=latency_ms, description=description, history=history
        ),
    )
    if settled and balance_after_reserve is not None:
        return balance_after_reserve
    return await credits.balance(session, principal.account_id)
