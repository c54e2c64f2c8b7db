"""Access and portability (Art. 15 and 20): every row held about an account, as one document.

Sections are named after their tables, so a reader (and the completeness test, which walks
every table with an ``account_id`` column) can match the export to the database. Secrets'
hashes (API keys, e-mail tokens, sessions, the password) are left out: they are ours, not data
about the person.

Size: bulk jobs can be large (up to 10,000 items each, and any number of jobs within their
retention period), so each section is streamed from the database in chunks of ``CHUNK`` rows
and each row becomes a plain dict as it arrives (Core rows, no ORM objects in the session). The
document itself is still built in memory, because the export endpoints answer with one JSON
body: an account with many big jobs gives a big document (very roughly 1 KB per item, so tens
of MB for a few full jobs). Nothing is cut short or paginated: every row is exported.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Column, RowMapping, Table, select
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account, ApiKey, WebSession
from alttext.billing.models import CreditEntry, CreditReservation, StripeEvent
from alttext.db import Base, iso_utc, utcnow
from alttext.errors import NotFound
from alttext.idempotency import IdempotencyRecord
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage, WebhookSigning
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
    "jobs": {"defaults"},
    "job_items": {"options", "review_reasons", "problem"},
    "webhook_messages": {"payload"},
}
# (model, columns to order by; the primary key breaks ties) for every table that holds rows
# about an account. ``webhook_signing`` holds only the signing secret's version: the secret
# itself is derived from the service's key when needed, never stored, so there is none to show.
SECTIONS: tuple[tuple[type[Base], tuple[str, ...]], ...] = (
    (Consent, ("created_at",)),
    (ApiKey, ("created_at",)),
    (WebSession, ("created_at",)),
    (UsageEvent, ("created_at",)),
    (CreditEntry, ("created_at",)),
    (CreditReservation, ("created_at",)),
    (IdempotencyRecord, ("created_at",)),
    (StripeEvent, ("received_at",)),
    (EmailToken, ("created_at",)),
    (AuditEvent, ("created_at",)),
    (Job, ("created_at",)),
    # Items have no time of their own: job by job (ids are time-ordered), in the job's order.
    (JobItem, ("job_id", "seq")),
    (WebhookSigning, ("version",)),
    (WebhookMessage, ("created_at",)),
    (WebhookAttempt, ("attempted_at",)),
)
# Rows fetched per round trip while streaming a section.
CHUNK = 1000


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


def _columns(table: Table) -> list[tuple[Column[Any], bool]]:
    """The exported columns of ``table``, each with whether it holds JSON text."""
    omitted = OMITTED.get(table.name, set())
    as_json = JSON_COLUMNS.get(table.name, set())
    return [(c, c.name in as_json) for c in table.columns if c.name not in omitted]


def _convert(
    columns: list[tuple[Column[Any], bool]], values: Callable[[Column[Any]], Any]
) -> dict[str, Any]:
    return {c.name: _json(values(c)) if js else _value(values(c)) for c, js in columns}


def row_dict(row: Base) -> dict[str, Any]:
    return _convert(_columns(_table(row)), lambda c: getattr(row, c.key))


def _mapping_dict(columns: list[tuple[Column[Any], bool]], row: RowMapping) -> dict[str, Any]:
    return _convert(columns, lambda c: row[c])


async def export_account(session: AsyncSession, account_id: str) -> dict[str, Any]:
    account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("The account no longer exists.")
    document: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "generated_at": _value(utcnow()),
        "account": row_dict(account),
    }
    # The caller may have added rows in this transaction (its own audit event): the Core queries
    # below do not autoflush, so flush here for the export to include them.
    await session.flush()
    for model, order in SECTIONS:
        table = _table(model)
        columns = _columns(table)
        query = (
            select(table)
            .where(table.c.account_id == account_id)
            .order_by(*(table.c[name] for name in order), *table.primary_key)
            .execution_options(yield_per=CHUNK)
        )
        result = await session.stream(query)
        document[table.name] = [_mapping_dict(columns, row) async for row in result.mappings()]
    return document
