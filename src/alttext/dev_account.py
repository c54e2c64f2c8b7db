"""The development account that ``make run`` sets up, so a newcomer can call the API at once."""

from __future__ import annotations

import hashlib
import hmac

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts import keys
from alttext.accounts.models import ApiKey
from alttext.accounts.service import create_account, get_account_by_email
from alttext.billing.ledger import grant_starting_credits
from alttext.ids import new_id

DEV_EMAIL = "dev@localhost.localdomain"
DEV_CREDITS = 1000


def dev_key(secret_key: str) -> str:
    """Derived from the deployment's secret: the same key on every start of this checkout."""
    seed = hmac.new(secret_key.encode(), b"alttext development api key", hashlib.sha256).digest()
    return keys.key_from_seed(seed)


async def ensure_dev_account(session: AsyncSession, secret_key: str) -> str:
    """Create the account (once, with 1,000 credits) and its key; return the key."""
    account = await get_account_by_email(session, DEV_EMAIL)
    if account is None:
        account = await create_account(session, DEV_EMAIL, name="Development")
        await grant_starting_credits(session, account, DEV_CREDITS)
    secret = dev_key(secret_key)
    digest = keys.hash_key(secret)
    existing = (
        await session.execute(select(ApiKey).where(ApiKey.key_hash == digest))
    ).scalar_one_or_none()
    if existing is None:
        session.add(
            ApiKey(
                id=new_id("key"),
                account_id=account.id,
                name="development",
                prefix=keys.display_prefix(secret),
                key_hash=digest,
            )
        )
    elif existing.revoked_at is not None:
        existing.revoked_at = None
    return secret
