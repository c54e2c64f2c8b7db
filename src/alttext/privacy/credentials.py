"""Dashboard passwords: a reset by mailed link, a change while signed in.

Both end every other session of the account and start a fresh one for the person who made the
change (the caller sets its cookie). The account's owner is told by mail. Hashing is done by the
caller, outside any transaction (it takes tens of milliseconds of CPU).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts import sessions as web_sessions
from alttext.accounts.models import Account
from alttext.accounts.service import get_account_by_email
from alttext.accounts.sessions import SIGN_IN_STATUSES
from alttext.config import Settings
from alttext.db import transaction
from alttext.errors import InvalidRequest, NotFound
from alttext.mail import Mail
from alttext.privacy import mails, tokens
from alttext.privacy.audit import record


@dataclass(frozen=True)
class NewSession:
    account_id: str
    session_id: str
    secret: str  # for the cookie; never stored
    mail: Mail


async def request_reset(
    sessions: async_sessionmaker[AsyncSession], settings: Settings, email: str
) -> Mail | None:
    """A reset link for an account that may sign in; None (and nothing stored) otherwise. The
    caller answers the same either way, so the answer tells nobody whether the address is
    registered."""
    try:
        async with transaction(sessions) as session:
            account = await get_account_by_email(session, email)
            if account is None or account.status not in SIGN_IN_STATUSES:
                return None
            _, secret = await tokens.issue(session, account.id, "reset_password", account.email)
            await record(session, account.id, "password_reset_requested", actor="account")
            return mails.reset_password(settings, account.email, secret)
    except InvalidRequest:  # not an address at all
        return None


async def reset_email(sessions: async_sessionmaker[AsyncSession], token: str) -> str | None:
    """The address a valid reset link is for (to check a new password against it)."""
    async with sessions() as session:
        row = await tokens.peek(session, token, "reset_password")
    return row.email if row else None


async def _replace(
    session: AsyncSession, settings: Settings, account: Account, password_hash: str, action: str
) -> NewSession:
    account.password_hash = password_hash
    ended = await web_sessions.end_all(session, account.id)
    row, secret = await web_sessions.start(session, account.id)
    await record(session, account.id, action, actor="account", sessions_ended=ended)
    return NewSession(account.id, row.id, secret, mails.password_changed(settings, account.email))


async def reset_password(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    token: str,
    password_hash: str,
) -> NewSession:
    async with transaction(sessions) as session:
        row = await tokens.consume(session, token, "reset_password")
        account = await session.get(Account, row.account_id, with_for_update=True)
        if account is None or account.status not in SIGN_IN_STATUSES or account.email != row.email:
            raise tokens.invalid_token()
        return await _replace(session, settings, account, password_hash, "password_reset")


async def change_password(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    account_id: str,
    password_hash: str,
) -> NewSession:
    """The caller checked the current password (if one was set) before hashing the new one."""
    async with transaction(sessions) as session:
        account = await session.get(Account, account_id, with_for_update=True)
        if account is None:
            raise NotFound("The account no longer exists.")
        return await _replace(session, settings, account, password_hash, "password_changed")
