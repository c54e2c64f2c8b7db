"""Rectification (Art. 16), objection to optional processing (Art. 21) and restriction (Art. 18).

Each call runs in one transaction with its audit event; mails go out after the commit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import Account
from alttext.accounts.service import get_account_by_email, normalise_email
from alttext.config import Settings
from alttext.db import transaction, utcnow
from alttext.errors import AppError, NotFound
from alttext.mail import Mail, Mailer
from alttext.privacy import mails, tokens
from alttext.privacy.audit import Actor, record
from alttext.privacy.consents import Source, record_consent


class EmailTaken(AppError):
    code = "invalid_request"
    status = 409
    title = "E-mail address in use"


@dataclass(frozen=True)
class AccountChanges:
    """Only the fields the caller sent; ``name_given`` tells an explicit null from absence."""

    name: str | None = None
    name_given: bool = False
    email: str | None = None
    history: bool | None = None
    product_email: bool | None = None


@dataclass
class ChangeResult:
    account: Account
    email_change_pending: bool = False
    mails: list[Mail] = field(default_factory=list)


async def _locked(session: AsyncSession, account_id: str) -> Account:
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None:
        raise NotFound("The account no longer exists.")
    return account


async def _request_email_change(
    session: AsyncSession, settings: Settings, account: Account, new: str
) -> list[Mail]:
    # The answer is the same whether or not the new address is taken; only its owner learns.
    if await get_account_by_email(session, new) is not None:
        return [mails.new_email_in_use(settings, new)]
    _, secret = await tokens.issue(session, account.id, "change_email", new)
    return [
        mails.confirm_new_email(settings, new, secret),
        mails.email_change_notice(settings, account.email),
    ]


async def update_account(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    mailer: Mailer,
    account_id: str,
    changes: AccountChanges,
    *,
    actor: Actor,
    source: Source = "api",
) -> ChangeResult:
    new_email = normalise_email(changes.email) if changes.email is not None else None
    async with transaction(sessions) as session:
        account = await _locked(session, account_id)
        result = ChangeResult(account=account)
        if changes.name_given:
            account.name = changes.name
            await record(session, account.id, "rectify", actor=actor, fields=["name"])
        if new_email is not None and new_email != account.email:
            result.mails = await _request_email_change(session, settings, account, new_email)
            result.email_change_pending = True
            await record(session, account.id, "email_change_requested", actor=actor)
        objections: dict[str, bool] = {}
        if changes.history is not None:
            account.history_opt_in = changes.history
            await record_consent(
                session, account.id, "history", granted=changes.history, source=source
            )
            objections["history"] = changes.history
        if changes.product_email is not None:
            account.product_email_opt_in = changes.product_email
            await record_consent(
                session, account.id, "product_email", granted=changes.product_email, source=source
            )
            objections["product_email"] = changes.product_email
        if objections:
            await record(session, account.id, "processing_choices", actor=actor, **objections)
    for mail in result.mails:
        await mailer.send(mail)
    return result


async def confirm_email_change(
    sessions: async_sessionmaker[AsyncSession], account_id: str, token: str, *, actor: Actor
) -> Account:
    taken = EmailTaken(
        "That address has been taken by another account meanwhile; nothing was changed."
    )
    try:
        async with transaction(sessions) as session:
            row = await tokens.consume(session, token, "change_email", account_id=account_id)
            account = await _locked(session, account_id)
            other = await get_account_by_email(session, row.email)
            if other is not None and other.id != account.id:
                raise taken
            account.email = row.email
            account.email_verified_at = utcnow()
            await session.flush()
            await record(session, account.id, "rectify", actor=actor, fields=["email"])
    except IntegrityError as exc:  # a concurrent sign-up or change won the unique address
        raise taken from exc
    return account


async def set_restricted(
    sessions: async_sessionmaker[AsyncSession],
    account_id: str,
    restricted: bool,
    *,
    actor: Actor,
) -> datetime | None:
    """Restrict (idempotent: the first time counts) or lift; the restriction time or None."""
    async with transaction(sessions) as session:
        account = await _locked(session, account_id)
        if restricted and account.restricted_at is None:
            account.restricted_at = utcnow()
        elif not restricted:
            account.restricted_at = None
        action = "restrict" if restricted else "lift_restriction"
        await record(session, account.id, action, actor=actor)
        return account.restricted_at
