"""Argon2id passwords and server-side dashboard sessions."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from alttext.accounts import passwords
from alttext.accounts import sessions as web_sessions
from alttext.accounts.models import WebSession
from alttext.accounts.service import create_account
from alttext.db import create_engine, session_factory, transaction, utcnow
from alttext.errors import InvalidRequest


def test_passwords_are_argon2id_and_checked() -> None:
    stored = passwords.hash_password_sync("correct horse battery staple")
    assert stored.startswith("$argon2id$")
    assert passwords.verify_password_sync(stored, "correct horse battery staple")
    assert not passwords.verify_password_sync(stored, "correct horse battery stapler")
    assert not passwords.verify_password_sync("not a hash", "x")
    # No stored hash: the same work against a dummy hash, and never a match.
    assert not passwords.verify_password_sync(
        None, "not a password: equal timing for unknown addresses"
    )
    assert not passwords.needs_rehash(stored)


@pytest.mark.parametrize(
    ("password", "problem"),
    [("short", "at least 10"), ("x" * 201, "at most 200"), ("Me@Example.com", "e-mail address")],
)
def test_new_passwords_are_checked(password: str, problem: str) -> None:
    with pytest.raises(InvalidRequest) as info:
        passwords.check_new_password(password, email="me@example.com", field="new_password")
    assert problem in info.value.detail
    assert info.value.errors == [{"field": "new_password", "message": info.value.detail}]


async def test_sessions_store_only_a_hash_and_end(database_url: str) -> None:
    engine = create_engine(database_url)
    sessions = session_factory(engine)
    try:
        async with transaction(sessions) as session:
            account = await create_account(session, "s@example.com")
            row, secret = await web_sessions.start(session, account.id)
        assert row.token_hash == web_sessions.hash_secret(secret)
        assert secret not in row.token_hash
        async with sessions() as session:
            found = await web_sessions.find(session, secret)
            assert found is not None
            assert found[1].id == account.id
            assert await web_sessions.find(session, secret + "x") is None
            assert await web_sessions.find(session, "x" * 500) is None

        async def aged(**changes: Any) -> Any:
            async with transaction(sessions) as session:
                stored = await session.get(WebSession, row.id)
                assert stored is not None
                for name, value in changes.items():
                    setattr(stored, name, value)
            async with sessions() as session:
                return await web_sessions.find(session, secret)

        now = utcnow()
        assert await aged(last_seen_at=now - web_sessions.IDLE_TIMEOUT) is None  # idle
        assert await aged(last_seen_at=now) is not None
        assert await aged(expires_at=now - timedelta(seconds=1)) is None  # over
        async with transaction(sessions) as session:
            assert await web_sessions.end_all(session, account.id) == 1
    finally:
        await engine.dispose()
