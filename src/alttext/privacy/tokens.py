"""One-time e-mail tokens (sign-up, address change, password reset): 32 random bytes in the link,
only their SHA-256 in the database."""

from __future__ import annotations

import hashlib
import secrets
from datetime import timedelta
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.db import utcnow
from alttext.errors import InvalidRequest
from alttext.ids import new_id
from alttext.privacy.models import EmailToken

Purpose = Literal["verify_signup", "change_email", "reset_password"]
LIFETIME: dict[str, timedelta] = {
    "verify_signup": timedelta(hours=48),
    "change_email": timedelta(hours=24),
    "reset_password": timedelta(hours=1),
}
MAX_TOKEN_CHARS = 100


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


async def issue(
    session: AsyncSession, account_id: str, purpose: Purpose, email: str
) -> tuple[EmailToken, str]:
    """A new token; earlier unused tokens of the same purpose stop working (only the latest
    link counts). Returns the row and the secret, which is never stored."""
    now = utcnow()
    await session.execute(
        update(EmailToken)
        .where(
            EmailToken.account_id == account_id,
            EmailToken.purpose == purpose,
            EmailToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    secret = secrets.token_urlsafe(32)
    row = EmailToken(
        id=new_id("etok"),
        account_id=account_id,
        purpose=purpose,
        email=email,
        token_hash=hash_token(secret),
        created_at=now,
        expires_at=now + LIFETIME[purpose],
    )
    session.add(row)
    await session.flush()
    return row, secret


def invalid_token() -> InvalidRequest:
    # One answer for unknown, used and expired tokens: nothing to learn by probing.
    return InvalidRequest(
        "This link is invalid, was used already or has expired; ask for a new one.", status=400
    )


async def consume(
    session: AsyncSession, token: str, purpose: Purpose, *, account_id: str | None = None
) -> EmailToken:
    """Mark a valid token used (row locked, so two clicks cannot both succeed)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        raise invalid_token()
    row = (
        await session.execute(
            select(EmailToken)
            .where(EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose)
            .with_for_update()
        )
    ).scalar_one_or_none()
    now = utcnow()
    if (
        row is None
        or row.used_at is not None
        or row.expires_at <= now
        or (account_id is not None and row.account_id != account_id)
    ):
        raise invalid_token()
    row.used_at = now
    return row


async def peek(session: AsyncSession, token: str, purpose: Purpose) -> EmailToken | None:
    """The valid, unused token row without using it (to show a page before a form is sent)."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    row = (
        await session.execute(
            select(EmailToken).where(
                EmailToken.token_hash == hash_token(token), EmailToken.purpose == purpose
            )
        )
    ).scalar_one_or_none()
    if row is None or row.used_at is not None or row.expires_at <= utcnow():
        return None
    return row
