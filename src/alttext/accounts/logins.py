"""Password sign-in with throttling that tells nobody whether an address is registered.

At most ``ACCOUNT_LIMIT`` failed logins per address and ``CLIENT_LIMIT`` per client address in
``WINDOW``; after that the answer is "try again in N minutes" without checking the password.
Each attempt is written to ``login_failures`` *before* the password is checked (and taken back
if it was right), so concurrent guesses cannot slip past the count. Subjects are keyed hashes
(HMAC-SHA256 with the service's secret key) of the address tried and of the client's IP
address: an address without an account is throttled exactly like one with an account, and the
password check costs the same for both (``passwords.verify_password``'s dummy hash).
"""

from __future__ import annotations

import hashlib
import hmac
import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts import passwords
from alttext.accounts.models import Account, LoginFailure
from alttext.accounts.service import get_account_by_email, normalise_email
from alttext.accounts.sessions import SIGN_IN_STATUSES
from alttext.db import transaction, utcnow
from alttext.errors import InvalidRequest

ACCOUNT_LIMIT = 5
CLIENT_LIMIT = 20
WINDOW = timedelta(minutes=15)


def subject(secret_key: str, kind: str, value: str) -> str:
    """A keyed hash naming who is throttled, without storing the address itself."""
    message = f"login:{kind}:{value}".encode()
    return hmac.new(secret_key.encode(), message, hashlib.sha256).hexdigest()


def account_subject(secret_key: str, email: str) -> str:
    try:
        value = normalise_email(email)
    except InvalidRequest:
        value = email.strip().lower()[:320]
    return subject(secret_key, "email", value)


def client_subject(secret_key: str, client_ip: str) -> str:
    return subject(secret_key, "client", client_ip)


@dataclass(frozen=True)
class LoginResult:
    """``account_id`` on success; ``retry_after`` when throttled; neither on a wrong guess."""

    account_id: str | None = None
    retry_after: timedelta | None = None

    @property
    def ok(self) -> bool:
        return self.account_id is not None

    @property
    def retry_minutes(self) -> int:
        seconds = self.retry_after.total_seconds() if self.retry_after else 0
        return max(1, math.ceil(seconds / 60))


async def _lock(session: AsyncSession, subjects: tuple[str, ...]) -> None:
    """Serialise attempts on the same subjects on PostgreSQL (SQLite has one writer anyway)."""
    if session.get_bind().dialect.name == "postgresql":
        for name in sorted(subjects):
            await session.execute(select(func.pg_advisory_xact_lock(int(name[:15], 16))))


async def _wait_for(
    session: AsyncSession, name: str, limit: int, now: datetime
) -> timedelta | None:
    """How long until ``name`` is below ``limit`` failures in the window; None if it is now."""
    times = list(
        (
            await session.execute(
                select(LoginFailure.created_at)
                .where(LoginFailure.subject == name, LoginFailure.created_at > now - WINDOW)
                .order_by(LoginFailure.created_at)
            )
        ).scalars()
    )
    if len(times) < limit:
        return None
    # Below the limit again once all but limit - 1 of them have left the window.
    return times[len(times) - limit] + WINDOW - now


async def check_and_count(
    sessions: async_sessionmaker[AsyncSession], account: str, client: str
) -> tuple[timedelta | None, list[int]]:
    """Either the wait (throttled: nothing counted) or the ids of the failures just counted."""
    now = utcnow()
    async with transaction(sessions) as session:
        await _lock(session, (account, client))
        waits = [
            w
            for w in (
                await _wait_for(session, account, ACCOUNT_LIMIT, now),
                await _wait_for(session, client, CLIENT_LIMIT, now),
            )
            if w is not None
        ]
        if waits:
            return max(waits), []
        # Old rows go as new ones come, so the table only ever holds the last window.
        await session.execute(delete(LoginFailure).where(LoginFailure.created_at <= now - WINDOW))
        rows = [LoginFailure(subject=s, created_at=now) for s in (account, client)]
        session.add_all(rows)
        await session.flush()
        return None, [r.id for r in rows]


async def forgive(
    sessions: async_sessionmaker[AsyncSession], account: str, counted: list[int]
) -> None:
    """A right password: the address starts afresh, and this attempt does not count."""
    async with transaction(sessions) as session:
        await session.execute(
            delete(LoginFailure).where(
                (LoginFailure.subject == account) | LoginFailure.id.in_(counted)
            )
        )


async def log_in(
    sessions: async_sessionmaker[AsyncSession],
    secret_key: str,
    *,
    email: str,
    password: str,
    client_ip: str,
) -> LoginResult:
    account_key = account_subject(secret_key, email)
    wait, counted = await check_and_count(
        sessions, account_key, client_subject(secret_key, client_ip)
    )
    if wait is not None:
        return LoginResult(retry_after=wait)
    account: Account | None = None
    try:
        async with sessions() as session:
            account = await get_account_by_email(session, email)
    except InvalidRequest:
        account = None
    stored = account.password_hash if account is not None else None
    right = await passwords.verify_password(stored, password)
    if not right or account is None or account.status not in SIGN_IN_STATUSES:
        return LoginResult()
    await forgive(sessions, account_key, counted)
    if stored and passwords.needs_rehash(stored):
        new_hash = await passwords.hash_password(password)
        async with transaction(sessions) as session:
            fresh = await session.get(Account, account.id)
            if fresh is not None and fresh.password_hash == stored:
                fresh.password_hash = new_hash
    return LoginResult(account_id=account.id)


async def check_password(
    sessions: async_sessionmaker[AsyncSession],
    secret_key: str,
    *,
    email: str,
    stored: str | None,
    password: str,
    client_ip: str,
) -> LoginResult:
    """A password check for a known account (confirming a sign-up, changing the password),
    throttled and counted like a login. ``account_id`` is set to "" on success."""
    account_key = account_subject(secret_key, email)
    wait, counted = await check_and_count(
        sessions, account_key, client_subject(secret_key, client_ip)
    )
    if wait is not None:
        return LoginResult(retry_after=wait)
    if not await passwords.verify_password(stored, password):
        return LoginResult()
    await forgive(sessions, account_key, counted)
    return LoginResult(account_id="")
