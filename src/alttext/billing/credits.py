"""Spending credits: reserve before the model call, settle or release after it.

Each step is its own short transaction; nothing is held open across a model call.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext import metrics
from alttext.accounts.models import Account
from alttext.billing.ledger import add_new_entry, book
from alttext.billing.models import CreditReservation
from alttext.db import transaction, utcnow
from alttext.errors import InsufficientCredits

CREDITS_PER_IMAGE = 1


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
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.credits_balance >= credits)
        .values(credits_balance=Account.credits_balance - credits)
        .returning(Account.credits_balance)
    )
    remaining = result.scalar_one_or_none()
    if remaining is None:
        raise InsufficientCredits(
            "This account has no credits left. Buy more at /v1/billing/checkout "
            "(failed generations are never charged)."
        )
    # A request id is new, so is its reference: no savepoint; the entry and the reservation
    # are written by the commit's flush (one round trip each, none of their own).
    add_new_entry(
        session,
        account_id=account_id,
        kind="usage",
        credits=-credits,
        reference=f"usage:{request_id}",
    )
    now = utcnow()
    session.add(
        CreditReservation(
            id=request_id,
            account_id=account_id,
            credits=credits,
            state="held",
            created_at=now,
            expires_at=now + timedelta(seconds=ttl_s),
        )
    )
    return int(remaining)


async def settle(session: AsyncSession, *, request_id: str) -> bool:
    """Keep the credit. False if the reservation had already expired and been released."""
    settled = await session.scalar(
        update(CreditReservation)
        .where(CreditReservation.id == request_id, CreditReservation.state == "held")
        .values(state="settled")
        .returning(CreditReservation.credits)
    )
    if settled is None:
        return False
    # Counted before the caller commits: should that commit fail, one settlement too many is
    # counted; rare, and simpler than a hook after every caller's commit.
    metrics.record_credits_spent(settled)
    return True


async def release(session: AsyncSession, *, request_id: str, note: str | None = None) -> bool:
    """Give the credit back, once. False if it was settled or released before."""
    reservation = (
        await session.execute(
            update(CreditReservation)
            .where(CreditReservation.id == request_id, CreditReservation.state == "held")
            .values(state="released")
            .returning(CreditReservation.account_id, CreditReservation.credits)
        )
    ).one_or_none()
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
    value = await session.scalar(select(Account.credits_balance).where(Account.id == account_id))
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
