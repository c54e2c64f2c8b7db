"""Self-service sign-up: consent and age first, then a verified address, then a key.

The answer to a sign-up never tells whether the address has an account: a new address gets a
verification link, an unconfirmed one a fresh link, and an existing account a notice that
someone tried. The mail is built in the transaction and sent after it commits, so no database
lock is held while a mail server answers.

A password chosen at sign-up (the dashboard) becomes usable only when whoever opens the mailed
link proves they know it (``verify_web``). The latest sign-up of an unconfirmed address wins,
with its password or without one, and only its link works: so nobody can sign up with someone
else's address, wait for its owner to confirm, and then sign in with a password of their own.
Confirming through the API (no password asked) clears a pending password for the same reason.
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
from alttext.billing.ledger import grant_starting_credits
from alttext.config import Settings
from alttext.db import transaction, utcnow
from alttext.errors import InvalidRequest
from alttext.mail import Mail, Mailer
from alttext.privacy import mails, tokens
from alttext.privacy.audit import record
from alttext.privacy.consents import Source, record_consent
from alttext.privacy.models import EmailToken
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION
from alttext.privacy.trial import claim_trial


@dataclass(frozen=True)
class SignupRequest:
    email: str
    name: str | None
    product_email: bool
    password_hash: str | None = None  # Argon2id, from the dashboard's form
    source: Source = "signup"


@dataclass(frozen=True)
class Verified:
    account_id: str
    key: ApiKey
    secret: str


@dataclass(frozen=True)
class PendingSignup:
    """An unconfirmed sign-up behind a valid link, as the confirmation page needs it."""

    account_id: str
    email: str
    password_hash: str | None


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
    account.password_hash = req.password_hash
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
    return mails.verify_signup(settings, email, secret, with_password=req.password_hash is not None)


async def _existing(
    session: AsyncSession, settings: Settings, account: Account, req: SignupRequest
) -> Mail:
    if account.status == "unverified":
        # The owner lost or let expire the first link: a new one replaces it, and this
        # sign-up's password (or none) replaces the earlier one.
        account.password_hash = req.password_hash
        _, secret = await tokens.issue(session, account.id, "verify_signup", account.email)
        return mails.verify_signup(
            settings, account.email, secret, with_password=req.password_hash is not None
        )
    return mails.signup_attempt_on_existing(settings, account.email)


async def prepare_sign_up(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, req: SignupRequest
) -> Mail:
    """Record the sign-up; the mail to send (after the response, if the caller likes)."""
    email = normalise_email(req.email)
    async with transaction(sessions) as session:
        existing = await get_account_by_email(session, email)
        mail = None if existing else await _new_account(session, settings, email, req)
        if mail is None:
            existing = existing or await get_account_by_email(session, email)
            assert existing is not None
            mail = await _existing(session, settings, existing, req)
    return mail


async def sign_up(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    mailer: Mailer,
    req: SignupRequest,
) -> None:
    await mailer.send(await prepare_sign_up(sessions, settings, req))


async def pending(sessions: async_sessionmaker[AsyncSession], token: str) -> PendingSignup | None:
    """The sign-up behind a link, without using the link; None if it cannot be confirmed."""
    async with sessions() as session:
        row = await tokens.peek(session, token, "verify_signup")
        account = await session.get(Account, row.account_id) if row else None
    if row is None or account is None or account.status != "unverified":
        return None
    if account.email != row.email:
        return None
    return PendingSignup(account.id, account.email, account.password_hash)


async def _activate(
    session: AsyncSession, settings: Settings, token: str
) -> tuple[Account, EmailToken]:
    row = await tokens.consume(session, token, "verify_signup")
    account = await session.get(Account, row.account_id, with_for_update=True)
    if account is None or account.status != "unverified" or account.email != row.email:
        raise tokens.invalid_token()
    account.status = "active"
    account.email_verified_at = utcnow()
    if settings.free_credits and await claim_trial(session, settings.secret_key, account.email):
        await grant_starting_credits(session, account, settings.free_credits)
    return account, row


async def verify(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, token: str
) -> Verified:
    """Confirm the address through the API: the account becomes active, gets its trial credits
    (once per address) and its first key. A pending dashboard password is cleared: whoever
    confirms here has not shown they know it (set one later with a reset)."""
    async with transaction(sessions) as session:
        account, _ = await _activate(session, settings, token)
        account.password_hash = None
        key, secret = await create_key(session, account.id, name="default")
        await record(session, account.id, "verify_email", actor="account", key_id=key.id)
    return Verified(account_id=account.id, key=key, secret=secret)


async def verify_web(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    token: str,
    *,
    password_hash: str | None,
) -> str:
    """Confirm the address from the dashboard's page, after the caller checked the password
    against ``password_hash`` (the one ``pending`` showed). No key is made: the dashboard makes
    them. Returns the account id."""
    async with transaction(sessions) as session:
        account, _ = await _activate(session, settings, token)
        if account.password_hash != password_hash:  # a newer sign-up changed it meanwhile
            raise tokens.invalid_token()
        await record(session, account.id, "verify_email", actor="account", via="dashboard")
    return account.id
