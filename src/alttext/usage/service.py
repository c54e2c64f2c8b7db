"""Summing usage events by period and model (generation records them with its settle or release).

Statuses: ``succeeded`` (charged), ``failed`` (never charged), ``decorative`` (the caller
marked the image decorative: answered ``""`` without a model, 0 credits) and ``cached`` (answered
from the result cache, or by an identical request's model call running at the same time: no
model call, 0 credits, 0 tokens). Decorative and cached requests count as requests that
succeeded, are never failures, and add nothing to credits or tokens; ``decorative`` and
``cached`` count them on their own, so charged requests = succeeded - decorative - cached.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import ColumnElement, String, case, cast, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.usage.models import UsageEvent

Granularity = Literal["day", "month"]


@dataclass(frozen=True)
class UsageRow:
    period: str
    model: str | None
    requests: int
    succeeded: int
    failed: int
    credits: int
    input_tokens: int
    output_tokens: int
    upstream_cost_usd: float
    decorative: int = 0
    cached: int = 0


FREE_SUCCESSES = ("decorative", "cached")


def _period(dialect: str, granularity: Granularity) -> ColumnElement[str]:
    column = UsageEvent.created_at
    if dialect == "postgresql":
        fmt = "YYYY-MM-DD" if granularity == "day" else "YYYY-MM"
        return func.to_char(func.timezone("UTC", column), fmt)
    # SQLite keeps UTC timestamps as ISO text: the prefix is the period.
    return func.substr(cast(column, String), 1, 10 if granularity == "day" else 7)


async def aggregate(
    session: AsyncSession,
    account_id: str,
    *,
    start: datetime,
    end: datetime,
    granularity: Granularity,
) -> list[UsageRow]:
    period = _period(session.get_bind().dialect.name, granularity).label("period")
    succeeded = func.sum(case((UsageEvent.status.in_(("succeeded", *FREE_SUCCESSES)), 1), else_=0))
    failed = func.sum(case((UsageEvent.status == "failed", 1), else_=0))
    decorative = func.sum(case((UsageEvent.status == "decorative", 1), else_=0))
    cached = func.sum(case((UsageEvent.status == "cached", 1), else_=0))
    query = (
        select(
            period,
            UsageEvent.model,
            func.count(),
            succeeded,
            failed,
            decorative,
            cached,
            func.sum(UsageEvent.credits),
            func.coalesce(func.sum(UsageEvent.input_tokens), 0),
            func.coalesce(func.sum(UsageEvent.output_tokens), 0),
            func.coalesce(func.sum(UsageEvent.upstream_cost_usd), 0),
        )
        .where(
            UsageEvent.account_id == account_id,
            UsageEvent.created_at >= start,
            UsageEvent.created_at < end,
        )
        .group_by(period, UsageEvent.model)
        .order_by(period, UsageEvent.model)
    )
    rows = await session.execute(query)
    return [
        UsageRow(
            period=p,
            model=model,
            requests=int(n),
            succeeded=int(ok or 0),
            failed=int(bad or 0),
            credits=int(credits or 0),
            input_tokens=int(tin),
            output_tokens=int(tout),
            upstream_cost_usd=round(float(cost), 8),
            decorative=int(free or 0),
            cached=int(hits or 0),
        )
        for p, model, n, ok, bad, free, hits, credits, tin, tout, cost in rows
    ]
