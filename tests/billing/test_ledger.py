from __future__ import annotations

import pytest
from sqlalchemy import select

from alttext.accounts.service import create_account
from alttext.billing.ledger import grant_starting_credits
from alttext.billing.models import CreditEntry
from alttext.db import create_engine, session_factory, transaction
from alttext.errors import InvalidRequest


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_starting_credits_are_booked_exactly_once(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        account = await create_account(s, "  Ada@Example.COM ")
        await grant_starting_credits(s, account, 7)
    assert account.email == "ada@example.com"
    assert account.credits_balance == 7
    async with sessions() as s:
        entries = (await s.execute(select(CreditEntry))).scalars().all()
    assert [(e.kind, e.credits) for e in entries] == [("grant", 7)]
    async with transaction(sessions) as s:
        other = await create_account(s, "b@example.com")
        with pytest.raises(InvalidRequest):
            await grant_starting_credits(s, other, -1)
