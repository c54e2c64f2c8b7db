"""Booking credit entries: every entry moves the balance by its own amount (``book``), except
a guarded spend, which moves the balance itself and appends its entry (``append_entry``, or
``add_new_entry`` for a spend whose reference is new by construction)."""

from __future__ import annotations

from typing import cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account
from alttext.billing.models import ENTRY_KINDS, CreditEntry
from alttext.db import deferred, upsert, utcnow
from alttext.errors import InvalidRequest
from alttext.ids import new_id

MAX_GRANT = 10_000_000


class DuplicateEntry(Exception):
    """The reference was booked before: the event is already in the ledger."""


async def book(
    session: AsyncSession,
    *,
    account_id: str,
    kind: str,
    credits: int,
    reference: str,
    amount_usd: float | None = None,
    note: str | None = None,
) -> CreditEntry:
    """Append an entry and move the balance by the same amount, in the caller's transaction.

    The unique ``reference`` makes a second booking of the same event fail with
    ``DuplicateEntry`` (the caller's transaction is then rolled back to before the entry).
    """
    entry = await append_entry(
        session,
        account_id=account_id,
        kind=kind,
        credits=credits,
        reference=reference,
        amount_usd=amount_usd,
        note=note,
    )
    await session.execute(
        update(Account)
        .where(Account.id == account_id)
        .values(credits_balance=Account.credits_balance + credits)
    )
    return entry


async def append_entry(
    session: AsyncSession,
    *,
    account_id: str,
    kind: str,
    credits: int,
    reference: str,
    amount_usd: float | None = None,
    note: str | None = None,
) -> CreditEntry:
    """Only the entry: for callers that moved the balance themselves (a guarded spend)."""
    entry = _entry(account_id, kind, credits, reference, amount_usd, note)
    try:
        async with session.begin_nested():
            session.add(entry)
            await session.flush()
    except IntegrityError as exc:
        raise DuplicateEntry(reference) from exc
    return entry


_INSERT_ENTRY = deferred(cast(Table, CreditEntry.__table__))


async def add_new_entry(
    session: AsyncSession, *, account_id: str, kind: str, credits: int, reference: str
) -> None:
    """Only the entry, for a ``reference`` that is new by construction (``usage:<request id>``,
    a fresh id): one plain INSERT on the transaction's connection, with no savepoint and no
    ORM object (a request's hot path: docs/decisions.md). Should the reference exist after all,
    the INSERT fails and the caller's transaction rolls back: nothing is booked twice."""
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    conn = await session.connection()
    await conn.execute(
        _INSERT_ENTRY,
        {
            "id": new_id("txn"),
            "account_id": account_id,
            "kind": kind,
            "credits": credits,
            "reference": reference,
            "created_at": utcnow(),
        },
    )


def _entry(
    account_id: str,
    kind: str,
    credits: int,
    reference: str,
    amount_usd: float | None,
    note: str | None,
) -> CreditEntry:
    if kind not in ENTRY_KINDS:
        raise ValueError(f"unknown ledger entry kind {kind!r}")
    return CreditEntry(
        id=new_id("txn"),
        account_id=account_id,
        kind=kind,
        credits=credits,
        reference=reference,
        amount_usd=amount_usd,
        note=note,
    )


async def grant(
    session: AsyncSession, account_id: str, credits: int, *, reason: str
) -> CreditEntry:
    """An admin grant: positive, bounded, with a reason, and its own unique reference."""
    if not 0 < credits <= MAX_GRANT:
        raise InvalidRequest(f"A grant must be between 1 and {MAX_GRANT} credits.")
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InvalidRequest("Give a reason of 1 to 500 characters.")
    return await book(
        session,
        account_id=account_id,
        kind="grant",
        credits=credits,
        reference=f"grant:{new_id('grant')}",
        note=reason,
    )


async def adjust(
    session: AsyncSession, account_id: str, credits: int, *, reason: str
) -> CreditEntry:
    """An admin correction of either sign, with a reason, booked as an ``adjustment``.

    A negative adjustment never takes the balance below zero: the guarded UPDATE moves the
    balance only if it holds the credits (as a spend does), so concurrent spends cannot race it.
    """
    if credits == 0 or abs(credits) > MAX_GRANT:
        raise InvalidRequest(f"An adjustment must be between 1 and {MAX_GRANT} credits either way.")
    reason = reason.strip()
    if not reason or len(reason) > 500:
        raise InvalidRequest("Give a reason of 1 to 500 characters.")
    reference = f"adjustment:{new_id('adj')}"
    if credits > 0:
        return await book(
            session,
            account_id=account_id,
            kind="adjustment",
            credits=credits,
            reference=reference,
            note=reason,
        )
    result = await session.execute(
        update(Account)
        .where(Account.id == account_id, Account.credits_balance >= -credits)
        .values(credits_balance=Account.credits_balance + credits)
        .returning(Account.credits_balance)
    )
    if result.scalar_one_or_none() is None:
        current = await session.scalar(
            select(Account.credits_balance).where(Account.id == account_id)
        )
        raise InvalidRequest(
            f"The balance is {int(current or 0)} credits; an adjustment of {credits} would take "
            "it below zero."
        )
    return await append_entry(
        session,
        account_id=account_id,
        kind="adjustment",
        credits=credits,
        reference=reference,
        note=reason,
    )


async def grant_starting_credits(session: AsyncSession, account: Account, credits: int) -> None:
    """Credits a new account starts with; booked once per account (its reference is unique)."""
    if not 0 <= credits <= MAX_GRANT:
        raise InvalidRequest(f"Starting credits must be between 0 and {MAX_GRANT}.")
    if credits:
        await book(
            session,
            account_id=account.id,
            kind="grant",
            credits=credits,
            reference=f"signup:{account.id}",
            note="starting credits",
        )
        await session.refresh(account)


# A job item's charge is booked under the item's own reference, so the ledger itself refuses a
# second charge for one item. The attempt's hold (``usage:<request id>``, booked at reserve) is
# moved onto it: a ``release`` entry for the attempt and a ``usage`` entry for the item, net zero.
ITEM_USAGE_PREFIX = "usage:item:"
MOVED_HOLD_PREFIX = "moved:"
# Bookkeeping inside the ledger, not events of their own: listings leave these out (their sum
# is zero), the account's export keeps them.
TRANSFER_PREFIXES = (ITEM_USAGE_PREFIX, MOVED_HOLD_PREFIX)


async def charge_item(
    session: AsyncSession, *, account_id: str, request_id: str, item_id: str, credits: int
) -> None:
    """Move an attempt's held ``credits`` onto the job item it produced, in the caller's
    (settling) transaction; the balance does not move (the hold already took the credits).

    Raises ``DuplicateEntry``, having written nothing, when the item was charged before: the
    caller must then not keep the attempt's result and release its credit instead. The item's
    entry is an INSERT … ON CONFLICT DO NOTHING on the unique reference, so a duplicate needs
    no savepoint and leaves the transaction usable. The inserts take the account row's
    foreign-key lock: callers holding other rows take those first (see ``jobs.runner.keeper``).
    """
    entries = cast(Table, CreditEntry.__table__)
    reference = f"{ITEM_USAGE_PREFIX}{item_id}"
    now = utcnow()
    booked = await session.scalar(
        upsert(session, entries)
        .values(
            id=new_id("txn"),
            account_id=account_id,
            kind="usage",
            credits=-credits,
            reference=reference,
            note=f"job item, attempt {request_id}",
            created_at=now,
        )
        .on_conflict_do_nothing(index_elements=["reference"])
        .returning(entries.c.id)
    )
    if booked is None:
        raise DuplicateEntry(reference)
    # An attempt settles once, so its reference is new.
    await session.execute(
        insert(entries).values(
            id=new_id("txn"),
            account_id=account_id,
            kind="release",
            credits=credits,
            reference=f"{MOVED_HOLD_PREFIX}{request_id}",
            note=f"hold moved to job item {item_id}",
            created_at=now,
        )
    )
