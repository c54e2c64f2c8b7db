"""Reading the credit ledger for ``GET /v1/billing/transactions``."""

from __future__ import annotations

from sqlalchemy import not_, select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.billing.ledger import TRANSFER_PREFIXES
from alttext.billing.models import CreditEntry

MAX_PAGE = 100


def public_reference(reference: str) -> str:
    """``stripe:refund:ch_1:500`` -> ``ch_1``; ``usage:req_1`` -> ``req_1``."""
    parts = reference.split(":")
    if parts[0] == "stripe" and len(parts) >= 3:
        return parts[2]
    return parts[-1] if len(parts) == 2 else reference


async def list_entries(
    session: AsyncSession,
    account_id: str,
    *,
    limit: int,
    starting_after: str | None = None,
    kind: str | None = None,
) -> tuple[list[CreditEntry], bool]:
    """Newest first. Ids are time-ordered (ids.py), so an id is a stable cursor.

    A job item's charge moves its attempt's hold onto the item (``ledger.charge_item``): two
    entries that sum to zero, left out here — the attempt's own ``usage`` entry already shows
    the credit spent, so the listing still sums to the balance and shows one spend per item.
    """
    query = select(CreditEntry).where(CreditEntry.account_id == account_id)
    for prefix in TRANSFER_PREFIXES:
        query = query.where(not_(CreditEntry.reference.startswith(prefix, autoescape=True)))
    if starting_after:
        query = query.where(CreditEntry.id < starting_after)
    if kind:
        query = query.where(CreditEntry.kind == kind)
    rows = list(
        (await session.execute(query.order_by(CreditEntry.id.desc()).limit(limit + 1))).scalars()
    )
    return rows[:limit], len(rows) > limit
