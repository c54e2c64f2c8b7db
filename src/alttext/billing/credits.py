"""Spending credits: reserve before the model call, settle or release after it.

Each step is its own short transaction; nothing is held open across a model call.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import cast

from sqlalchemy import Table, bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import Account
from alttext.billing.ledger import add_new_entry, book
from alttext.billing.models import CreditReservation
from alttext.db import after_commit, deferred, transaction, utcnow
from alttext.errors import InsufficientCredits

CREDITS_PER_IMAGE = 1


# A request's hot path runs these on every generation, so they are plain Core statements built
# once: no ORM unit of work, no per-call statement construction or cache-key generation
# (reserve and settle cost 7-8 ms of CPU through the ORM against 4.5 ms so: docs/decisions.md).
_ACCOUNTS = cast(Table, Account.__table__)
_RESERVATIONS = cast(Table, CreditReservation.__table__)
_SPEND = (
    update(_ACCOUNTS)
    .where(
        _ACCOUNTS.c.id == bindparam("b_account"), _ACCOUNTS.c.credits_balance >= bindparam("b_n")
    )
    .values(credits_balance=_ACCOUNTS.c.credits_balance - bindparam("b_n"))
    .returning(_ACCOUNTS.c.credits_balance)
)
_HOLD = deferred(_RESERVATIONS)
_SETTLE = (
    update(_RESERVATIONS)
    .where(_RESERVATIONS.c.id == bindparam("b_id"), _RESERVATIONS.c.state == "held")
    .values(state="settled")
    .returning(_RESERVATIONS.c.credits)
)
_RELEASE = (
    update(_RESERVATIONS)
    .where(_RESERVATIONS.c.id == bindparam("b_id"), _RESERVATIONS.c.state == "held")
    .values(state="released")
    .returning(_RESERVATIONS.c.account_id, _RESERVATIONS.c.credits)
)
_BALANCE = select(_ACCOUNTS.c.credits_balance).where(_ACCOUNTS.c.id == bindparam("b_account"))


async def reserve(
    session: AsyncSession,
    *,
    account_id: str,
    request_id: str,
    ttl_s: float,
    credits: int = CREDITS_PER_IMAGE,
) -> int:
    """Take ``credits`` from the balance if it holds them; return the balance left.

    The guarded UPDATE is the whole concurrency story: PostgreSQL re-checks the WHERE clause
    after waiting for the row lock, SQLite runs one writer at a time (BEGIN IMMEDIATE), so the
    balance can never go below zero whatever the number of concurrent requests.
    """
    conn = await session.connection()
    result = await conn.execute(_SPEND, {"b_account": account_id, "b_n": credits})
    remaining = result.scalar_one_or_none()
    if remaining is None:
        raise InsufficientCredits(
            "This account has no credits left. Buy more at /v1/billing/checkout "
            "(failed generations are never charged)."
        )
    # A request id is new, so is its reference: no savepoint.
    await add_new_entry(
        session,
        account_id=account_id,
        kind="usage",
        credits=-credits,
        reference=f"usage:{request_id}",
    )
    now = utcnow()
    await conn.execute(
        _HOLD,
        {
            "id": request_id,
            "account_id": account_id,
            "credits": credits,
            "state": "held",
            "created_at": now,
            "expires_at": now + timedelta(seconds=ttl_s),
        },
    )
    return int(remaining)


async def settle(session: AsyncSession, *, request_id: str) -> bool:
    """Keep the credit. False if the reservation had already expired and been released."""
    conn = await session.connection()
    settled = (await conn.execute(_SETTLE, {"b_id": request_id})).scalar_one_or_none()
    if settled is None:
        return False
    # Counted once the caller's transaction commits, so a settlement rolled back (or run again
    # after a deadlock: db.in_transaction) is not counted. Imported here, as only settling
    # counts: a command-line grant need not load the Prometheus client.
    from alttext import metrics

    after_commit(session, lambda: metrics.record_credits_spent(settled))
    return True


async def release(session: AsyncSession, *, request_id: str, note: str | None = None) -> bool:
    """Give the credit back, once. False if it was settled or released before."""
    conn = await session.connection()
    reservation = (await conn.execute(_RELEASE, {"b_id": request_id})).one_or_none()
    if reservation is None:
        return False
    account_id, credits = reservation
    await book(
        session,
        account_id=account_id,
        kind="release",
        credits=credits,
        reference=f"release:{request_id}",
        note=note,
    )
    return True


async def balance(session: AsyncSession, account_id: str) -> int:
    conn = await session.connection()
    value = (await conn.execute(_BALANCE, {"b_account": account_id})).scalar_one_or_none()
    return int(value or 0)


async def release_expired(
    sessions: async_sessionmaker[AsyncSession], *, now: datetime | None = None, batch: int = 500
) -> int:
    """Release reservations whose request died (crash, kill) before settling. Returns a count."""
    cutoff = now or utcnow()
    async with sessions() as session:
        ids = list(
            (
                await session.execute(
                    select(CreditReservation.id)
                    .where(CreditReservation.state == "held", CreditReservation.expires_at < cutoff)
                    .limit(batch)
                )
            ).scalars()
        )
    released = 0
    for request_id in ids:
        # One short transaction each: a long sweep never blocks live requests.
        async with transaction(sessions) as session:
            if await release(session, request_id=request_id, note="reservation expired"):
                released += 1
    return released
