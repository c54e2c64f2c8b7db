"""Access and portability (Art. 15 and 20): every row held about an account, as one document.

Sections are named after their tables, so a reader (and the completeness test, which walks
every table with an ``account_id`` column) can match the export to the database. Secrets'
hashes (API keys, e-mail tokens, sessions, the password) are left out: they are ours, not data
about the person.
"""

from __future__ import annotations

import json
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account, ApiKey, WebSession
from alttext.billing.models import CreditEntry, CreditReservation, StripeEvent
from alttext.db import Base, iso_utc, utcnow
from alttext.errors import NotFound
from alttext.idempotency import IdempotencyRecord
from alttext.privacy.models import AuditEvent, Consent, EmailToken
from alttext.usage.models import UsageEvent

FORMAT_VERSION = 1
# Columns never exported: hashes of secrets (the password's too).
OMITTED = {
    "accounts": {"password_hash"},
    "api_keys": {"key_hash"},
    "email_tokens": {"token_hash"},
    "web_sessions": {"token_hash"},
}
# Text columns holding JSON: exported as JSON, not as an escaped string.
JSON_COLUMNS = {
    "idempotency_records": {"response_body"},
    "stripe_events": {"payload"},
    "audit_events": {"detail"},
}
# (model, column to order by) for every table that holds rows about an account.
SECTIONS: tuple[tuple[type[Base], str], ...] = (
    (Consent, "created_at"),
    (ApiKey, "created_at"),
    (WebSession, "created_at"),
    (UsageEvent, "created_at"),
    (CreditEntry, "created_at"),
    (CreditReservation, "created_at"),
    (IdempotencyRecord, "created_at"),
    (StripeEvent, "received_at"),
    (EmailToken, "created_at"),
    (AuditEvent, "created_at"),
)


def _value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, Decimal):
        return float(value)
    return value


def _json(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _table(model: type[Base] | Base) -> Table:
    table = model.__table__
    assert isinstance(table, Table)
    return table


def row_dict(row: Base) -> dict[str, Any]:
    table = _table(row)
    omitted = OMITTED.get(table.name, set())
    as_json = JSON_COLUMNS.get(table.name, set())
    out: dict[str, Any] = {}
    for column in table.columns:
        if column.name in omitted:
            continue
        value = getattr(row, column.key)
        out[column.name] = _json(value) if column.name in as_json else _value(value)
    return out


async def export_account(session: AsyncSession, account_id: str) -> dict[str, Any]:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("The account no longer exists.")
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "generated_at": _value(utcnow()),
        "account": row_dict(account),
    }
    for model, order in SECTIONS:
        table = _table(model)
        query = (
            select(model)
            .where(table.c.account_id == account_id)
            .order_by(table.c[order], *table.primary_key)
        )
        rows = (await session.execute(query)).scalars()
        document[table.name] = [row_dict(r) for r in rows]
    return document
