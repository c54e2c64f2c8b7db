"""Accounts and API keys: creation, lookup, authentication, revocation."""

from __future__ import annotations

import hmac
import re
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts import keys
from alttext.accounts.models import Account, ApiKey
from alttext.db import utcnow
from alttext.errors import InvalidRequest, NotFound, Unauthorized
from alttext.ids import new_id

_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]{2,}$")
MAX_KEYS_PER_ACCOUNT = 50


def normalise_email(email: str) -> str:
    email = email.strip().lower()
    if len(email) > 320 or not _EMAIL.match(email):
        raise InvalidRequest("That is not a valid e-mail address.")
    return email


@dataclass(frozen=True)
class Principal:
    """Who is calling: the account and the key used."""

    account_id: str
    key_id: str
    account_status: str
    rate_limit_per_minute: int | None
    history_opt_in: bool = False
    restricted: bool = False


async def get_account_by_email(session: AsyncSession, email: str) -> Account | None:
    result = await session.execute(select(Account).where(Account.email == normalise_email(email)))
    return result.scalar_one_or_none()


async def require_account_by_email(session: AsyncSession, email: str) -> Account:
    account = await get_account_by_email(session, email)
    if account is None:
        raise NotFound(f"No account with the e-mail address {normalise_email(email)}.")
    return account


async def create_account(session: AsyncSession, email: str, *, name: str | None = None) -> Account:
    """A new account with a zero balance (credits come from the ledger: billing)."""
    account = Account(id=new_id("acct"), email=normalise_email(email), name=name)
    try:
        async with session.begin_nested():
            session.add(account)
            await session.flush()
    except IntegrityError as exc:
        raise InvalidRequest("An account with that e-mail address exists already.") from exc
    return account


async def create_key(
    session: AsyncSession, account_id: str, *, name: str | None = None
) -> tuple[ApiKey, str]:
    """Return the stored key and its secret; the secret is never stored or shown again."""
    active = await session.execute(
        select(ApiKey.id).where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
    )
    if len(active.all()) >= MAX_KEYS_PER_ACCOUNT:
        raise InvalidRequest(f"An account can hold at most {MAX_KEYS_PER_ACCOUNT} active keys.")
    secret = keys.generate_key()
    api_key = ApiKey(
        id=new_id("key"),
        account_id=account_id,
        name=name,
        prefix=keys.display_prefix(secret),
        key_hash=keys.hash_key(secret),
    )
    session.add(api_key)
    await session.flush()
    return api_key, secret


async def list_accounts(session: AsyncSession, *, limit: int) -> list[Account]:
    """Accounts, oldest first (operators' listing)."""
    result = await session.execute(
        select(Account).order_by(Account.created_at, Account.id).limit(limit)
    )
    return list(result.scalars())


async def list_keys(session: AsyncSession, account_id: str) -> list[ApiKey]:
    result = await session.execute(
        select(ApiKey).where(ApiKey.account_id == account_id).order_by(ApiKey.created_at)
    )
    return list(result.scalars())


async def revoke_key(
    session: AsyncSession, key_id: str, *, account_id: str | None = None, allow_last: bool = True
) -> ApiKey:
    """Revoke at once. With ``account_id``, another account's key is reported as not found.

    ``allow_last=False`` (the API's default) refuses to revoke the account's last active key,
    which would leave an API-only user without a way back in.
    """
    query = select(ApiKey).where(ApiKey.id == key_id)
    if account_id is not None:
        query = query.where(ApiKey.account_id == account_id)
    api_key = (await session.execute(query.with_for_update())).scalar_one_or_none()
    if api_key is None:
        raise NotFound(f"No API key with id {key_id}.")
    if api_key.revoked_at is None:
        if not allow_last and await _active_keys(session, api_key.account_id) <= 1:
            message = (
                "This is the account's last active key: without it the API cannot be used "
                f"until you make a new one. To revoke it anyway, send DELETE /v1/keys/{key_id}"
                "?allow_last=true (or create a new key first)."
            )
            raise InvalidRequest(message, errors=[{"field": "allow_last", "message": message}])
        api_key.revoked_at = utcnow()
    return api_key


async def _active_keys(session: AsyncSession, account_id: str) -> int:
    rows = await session.execute(
        select(ApiKey.id)
        .where(ApiKey.account_id == account_id, ApiKey.revoked_at.is_(None))
        .with_for_update()
    )
    return len(rows.all())


MALFORMED_KEY = "The API key is malformed; check that it was copied whole."
INVALID_KEY = "The API key is not valid."


def key_digest(secret: str) -> str:
    """The stored hash of a presented key. Malformed keys are refused before any lookup."""
    if not keys.is_well_formed(secret):
        raise Unauthorized(MALFORMED_KEY)
    return keys.hash_key(secret)


async def authenticate(session: AsyncSession, secret: str) -> Principal:
    """Resolve a presented key. Malformed keys are refused before any database work."""
    return await principal_for_digest(session, key_digest(secret))


async def principal_for_digest(session: AsyncSession, digest: str) -> Principal:
    """The caller a key hash belongs to (one query), or 401 for an unknown or revoked key or an
    unverified or erased account. ``accounts.key_cache`` keeps the answer for a few seconds."""
    row = (
        await session.execute(
            select(ApiKey, Account)
            .join(Account, Account.id == ApiKey.account_id)
            .where(ApiKey.key_hash == digest)
        )
    ).one_or_none()
    if row is None:
        raise Unauthorized(INVALID_KEY)
    api_key, account = row
    # The index lookup already matched; compare again in constant time so the check does not
    # rest on the database's string comparison.
    if (
        not hmac.compare_digest(api_key.key_hash, digest)
        or api_key.revoked_at is not None
        or account.status in ("unverified", "erased")
    ):
        raise Unauthorized(INVALID_KEY)
    return Principal(
        account_id=account.id,
        key_id=api_key.id,
        account_status=account.status,
        rate_limit_per_minute=account.rate_limit_per_minute,
        history_opt_in=account.history_opt_in,
        restricted=account.restricted_at is not None,
    )
