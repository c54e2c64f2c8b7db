from __future__ import annotations

import pytest
from sqlalchemy import select

from alttext.accounts.models import ApiKey
from alttext.accounts.service import authenticate
from alttext.billing.models import CreditEntry
from alttext.db import create_engine, session_factory, transaction
from alttext.dev_account import DEV_CREDITS, ensure_dev_account


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_dev_account_is_created_once_with_a_stable_key(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        first = await ensure_dev_account(s, "k" * 40)
    async with transaction(sessions) as s:
        second = await ensure_dev_account(s, "k" * 40)
    assert first == second
    async with sessions() as s:
        principal = await authenticate(s, first)
        entries = (await s.execute(select(CreditEntry))).scalars().all()
        keys_stored = (await s.execute(select(ApiKey))).scalars().all()
    assert principal.account_status == "active"
    assert sum(e.credits for e in entries) == DEV_CREDITS
    assert len(keys_stored) == 1
