"""Self-service sign-up: consent and age first, then a verified address, then a key.

The answer to a sign-up never tells whether the address has an account: a new address gets a
verification link, an unconfirmed one a fresh link, and an existing account a notice that
someone tried. The mail is sent after the transaction commits, so no database lock is held
while a mail server answers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import Account, ApiKey
from alttext.accounts.service import (
    create_account,
    create_key,
    get_account_by_email,
    normalise_email,
)
from alttext.billing.ledger import book
from alttext.config import Settings
from alttext.db import transaction, utcnow
from alttext.errors import InvalidRequest
from alttext.mail import Mail, Mailer
from alttext.privacy import mails, tokens
from alttext.privacy.audit import record
from alttext.privacy.consents import record_consent
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION


@dataclass(frozen=True)
class SignupRequest:
    email: str
    name: str | None
    product_email: bool


@dataclass(frozen=True)
class Verified:
    account_id: str
    key: ApiKey
    secret: str


async def _new_account(
    session: AsyncSession, settings: Settings, email: str, req: SignupRequest
) -> Mail | None:
    """Create the unverified account with its consents; None if the address was taken by a
    concurrent sign-up (the caller then treats it as existing)."""
    try:
        account = await create_account(session, email, name=req.name)
    except InvalidRequest:  # the unique address, inserted in a savepoint that rolled back
        return None
    account.status = "unverified"
    account.product_email_opt_in = req.product_email
    for kind, version in (("terms", TERMS_VERSION), ("privacy", PRIVACY_VERSION)):
        await record_consent(
            session, account.id, kind, granted=True, source="signup", version=version
        )
    await record_consent(session, account.id, "age_18", granted=True, source="signup")
    await record_consent(
        session, account.id, "product_email", granted=req.product_email, source="signup"
    )
    _, secret = await tokens.issue(session, account.id, "verify_signup", email)
    await record(session, account.id, "signup", actor="account")
    return mails.verify_signup(settings, email, secret)


async def _existing(session: AsyncSession, settings: Settings, account: Account) -> Mail:
    if account.status == "unverified":
        # The owner lost or let expire the first link: a new one replaces it.
        _, secret = await tokens.issue(session, account.id, "verify_signup", account.email)
        return mails.verify_signup(settings, account.email, secret)
    return mails.signup_attempt_on_existing(settings, account.email)


async def sign_up(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    mailer: Mailer,
    req: SignupRequest,
) -> None:
    email = normalise_email(req.email)
    async with transaction(sessions) as session:
        existing = await get_account_by_email(session, email)
        mail = None if existing else await _new_account(session, settings, email, req)
        if mail is None:
            existing = existing or await get_account_by_email(session, email)
            assert existing is not None
            mail = await _existing(session, settings, existing)
    await mailer.send(mail)


async def verify(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, token: str
) -> Verified:
    """Confirm the address: the account becomes active, gets its free credits and first key."""
    async with transaction(sessions) as session:
        row = await tokens.consume(session, token, "verify_signup")
        account = await session.get(Account, row.account_id, with_for_update=True)
        if account is None or account.status != "unverified" or account.email != row.email:
            raise tokens.invalid_token()
        account.status = "active"
        account.email_verified_at = utcnow()
        if settings.free_credits:
            await book(
                session,
                account_id=account.id,
                kind="grant",
                credits=settings.free_credits,
                reference=f"signup:{account.id}",
                note="starting credits",
            )
        key, secret = await create_key(session, account.id, name="default")
        await record(session, account.id, "verify_email", actor="account", key_id=key.id)
    return Verified(account_id=account.id, key=key, secret=secret)
