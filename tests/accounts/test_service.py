from __future__ import annotations

import pytest
from sqlalchemy import select

from alttext.accounts.dev import DEV_CREDITS, ensure_dev_account
from alttext.accounts.models import ApiKey
from alttext.accounts.service import (
    authenticate,
    create_account,
    create_key,
    revoke_key,
)
from alttext.billing.models import CreditEntry
from alttext.db import create_engine, session_factory, transaction
from alttext.errors import InvalidRequest, NotFound, Unauthorized


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_create_account_books_exactly_the_starting_credits(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        account = await create_account(s, "  Ada@Example.COM ", credits=7)
    assert account.email == "ada@example.com"
    assert account.credits_balance == 7
    async with sessions() as s:
        entries = (await s.execute(select(CreditEntry))).scalars().all()
    assert [(e.kind, e.credits) for e in entries] == [("grant", 7)]


async def test_duplicate_email_and_bad_input_are_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        await create_account(s, "a@example.com")
    with pytest.raises(InvalidRequest, match="exists"):
        async with transaction(sessions) as s:
            await create_account(s, "A@example.com")
    with pytest.raises(InvalidRequest):
        async with transaction(sessions) as s:
            await create_account(s, "not-an-email")
    with pytest.raises(InvalidRequest):
        async with transaction(sessions) as s:
            await create_account(s, "b@example.com", credits=-1)


async def test_only_the_hash_is_stored_and_the_key_authenticates(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        account = await create_account(s, "k@example.com")
        api_key, secret = await create_key(s, account.id, name="ci")
    async with sessions() as s:
        stored = (await s.execute(select(ApiKey))).scalar_one()
        principal = await authenticate(s, secret)
    assert secret not in (stored.key_hash, stored.prefix)
    assert stored.prefix == secret[:12]
    assert principal.account_id == account.id
    assert principal.key_id == api_key.id


async def test_malformed_unknown_and_revoked_keys_are_unauthorized(sessions) -> None:  # type: ignore[no-untyped-def]
    from alttext.accounts.keys import generate_key

    async with transaction(sessions) as s:
        account = await create_account(s, "r@example.com")
        api_key, secret = await create_key(s, account.id)
    async with sessions() as s:
        with pytest.raises(Unauthorized, match="malformed"):
            await authenticate(s, secret[:-1] + ("a" if secret[-1] != "a" else "b"))
        with pytest.raises(Unauthorized, match="not valid"):
            await authenticate(s, generate_key())
    async with transaction(sessions) as s:
        await revoke_key(s, api_key.id)
    async with sessions() as s:
        with pytest.raises(Unauthorized):
            await authenticate(s, secret)


async def test_revoking_another_accounts_key_is_not_found(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        a = await create_account(s, "a@example.com")
        b = await create_account(s, "b@example.com")
        key_a, _ = await create_key(s, a.id)
    with pytest.raises(NotFound):
        async with transaction(sessions) as s:
            await revoke_key(s, key_a.id, account_id=b.id)


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
