"""Dashboard sessions: server-side records behind a random cookie.

The cookie holds 32 random bytes; the database holds only their SHA-256, so a stolen database
yields no usable session, and deleting a row ends that session at once in every process.
Sessions end at logout, at account deletion or erasure (the rows go with the account), after
``IDLE_TIMEOUT`` without use, and ``LIFETIME`` after login at the latest. A password change or
reset ends every other session of the account and replaces the current one.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account, WebSession
from alttext.db import utcnow
from alttext.ids import new_id

LIFETIME = timedelta(days=30)
IDLE_TIMEOUT = timedelta(days=7)
TOUCH_EVERY = timedelta(hours=1)  # last_seen_at is written at most this often
MAX_SECRET_CHARS = 100
# Statuses that may sign in to the dashboard (a suspended account still sees its data).
SIGN_IN_STATUSES = ("active", "suspended")


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class SignedIn:
    """The session and its account, as read at the start of a request."""

    session_id: str
    account: Account


async def start(session: AsyncSession, account_id: str) -> tuple[WebSession, str]:
    """A new session; returns the row and the cookie secret, which is never stored."""
    secret = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        id=new_id("sess"),
        account_id=account_id,
        token_hash=hash_secret(secret),
        created_at=now,
        last_seen_at=now,
        expires_at=now + LIFETIME,
    )
    session.add(row)
    await session.flush()
    return row, secret


async def find(session: AsyncSession, secret: str | None) -> tuple[WebSession, Account] | None:
    """The live session for a cookie secret, with its account; None if unknown or over."""
    if not secret or len(secret) > MAX_SECRET_CHARS:
        return None
    row = (
        await session.execute(
            select(WebSession, Account)
            .join(Account, Account.id == WebSession.account_id)
            .where(WebSession.token_hash == hash_secret(secret))
        )
    ).one_or_none()
    if row is None:
        return None
    web_session, account = row
    now = utcnow()
    if (
        web_session.expires_at <= now
        or web_session.last_seen_at + IDLE_TIMEOUT <= now
        or account.status not in SIGN_IN_STATUSES
    ):
        return None
    return web_session, account


def needs_touch(web_session: WebSession) -> bool:
    return web_session.last_seen_at + TOUCH_EVERY <= utcnow()


async def touch(session: AsyncSession, session_id: str) -> None:
    row = await session.get(WebSession, session_id)
    if row is not None:
        row.last_seen_at = utcnow()


async def end(session: AsyncSession, session_id: str) -> None:
    await session.execute(delete(WebSession).where(WebSession.id == session_id))


async def end_by_secret(session: AsyncSession, secret: str | None) -> None:
    if secret and len(secret) <= MAX_SECRET_CHARS:
        await session.execute(
            delete(WebSession).where(WebSession.token_hash == hash_secret(secret))
        )


async def end_all(session: AsyncSession, account_id: str) -> int:
    """End every session of the account (a password reset); returns how many ended."""
    result = await session.execute(delete(WebSession).where(WebSession.account_id == account_id))
    return int(getattr(result, "rowcount", 0) or 0)
