"""Reserving, settling and releasing a credit, in the caller's transaction."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from alttext.accounts.models import Account
from alttext.accounts.service import create_account
from alttext.billing import credits
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import create_engine, session_factory, transaction


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def _account(sessions, credits_: int = 5) -> str:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        account = await create_account(s, "spender@example.com")
        await grant_starting_credits(s, account, credits_)
    return account.id


async def _state(sessions, account_id: str) -> tuple[int, list[tuple[str, int, str]], list[str]]:  # type: ignore[no-untyped-def]
    async with sessions() as s:
        balance = await s.scalar(select(Account.credits_balance).where(Account.id == account_id))
        entries = (await s.execute(select(CreditEntry).order_by(CreditEntry.id))).scalars()
        held = (await s.execute(select(CreditReservation.state))).scalars()
        return (
            int(balance or 0),
            [(e.kind, e.credits, e.reference) for e in entries],
            list(held),
        )


async def test_a_reservation_takes_the_credit_with_its_entry(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions)
    async with transaction(sessions) as s:
        left = await credits.reserve(s, account_id=account_id, request_id="req_1", ttl_s=60)
    balance, entries, held = await _state(sessions, account_id)
    assert left == balance == 4
    assert entries[-1] == ("usage", -1, "usage:req_1")
    assert held == ["held"]


async def test_reserving_a_used_request_id_again_books_nothing(sessions) -> None:  # type: ignore[no-untyped-def]
    account_id = await _account(sessions)
    async with transaction(sessions) as s:
        await credits.reserve(s, account_id=account_id, request_id="req_1", ttl_s=60)
    with pytest.raises(IntegrityError):
        async with transaction(sessions) as s:
            await credits.reserve(s, account_id=account_id, request_id="req_1", ttl_s=60)
    balance, entries, held = await _state(sessions, account_id)
    # The whole second unit rolled back: one credit taken, one entry, one reservation.
    assert balance == 4
    assert [e for e in entries if e[0] == "usage"] == [("usage", -1, "usage:req_1")]
    assert held == ["held"]
