"""The latest usage events of an account (metadata only), for the dashboard's overview."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.usage.models import UsageEvent


async def recent_events(
    session: AsyncSession, account_id: str, limit: int = 20
) -> list[UsageEvent]:
    query = (
        select(UsageEvent)
        .where(UsageEvent.account_id == account_id)
        .order_by(UsageEvent.created_at.desc(), UsageEvent.id.desc())
        .limit(limit)
    )
    return list((await session.execute(query)).scalars())
