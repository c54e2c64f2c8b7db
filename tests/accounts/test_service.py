from __future__ import annotations

import pytest
from sqlalchemy import select

from alttext.accounts.models import ApiKey
from alttext.accounts.service import (
    authenticate,
    create_account,
    create_key,
    revoke_key,
)
from alttext.db import create_engine, session_factory, transaction
from alttext.errors import InvalidRequest, NotFound, Unauthorized


@pytest.fixture
async def sessions(database_url: str):  # type: ignore[no-untyped-def]
    engine = create_engine(database_url)
    yield session_factory(engine)
    await engine.dispose()


async def test_duplicate_email_and_bad_input_are_refused(sessions) -> None:  # type: ignore[no-untyped-def]
    async with transaction(sessions) as s:
        await create_account(s, "a@example.com")
    with pytest.raises(InvalidRequest, match="exists"):
        async with transaction(sessions) as s:
            await create_account(s, "A@example.com")
    with pytest.raises(InvalidRequest):
        async with transaction(sessions) as s:
            await create_account(s, "not-an-email")


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
