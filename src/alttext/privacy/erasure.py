"""Erasure (Art. 17): delete the account and everything about it, keeping only the accounting
records the law requires, moved to an anonymous identity.

Order, so that a failure leaves either nothing changed or everything done:

1. The Stripe customer is deleted through Stripe's API (skipped when billing is not configured
   or the account never bought). If Stripe fails, the erasure stops there with a 503 and
   nothing here has changed, keys included, so the request can simply be retried.
2. One transaction: a new anonymised identity (``anon_…``, status ``erased``, no address, no
   name) receives only the ledger entries of kinds purchase, refund and adjustment; the audit
   trail is re-pointed to it; the Stripe inbox rows about the account are scrubbed; every
   other row about the account (keys, usage, reservations, idempotency records, consents,
   e-mail tokens, other ledger entries, bulk jobs and their items, webhook messages and their
   delivery attempts, the webhook signing version, and any future table with an
   ``account_id``) is deleted, children before parents, and then the account row itself. Keys
   stop working at that commit; an ``erase`` audit event names the anonymised id only.
3. The account's cached results (``alttext.result_cache``: alt text, never images) are
   deleted: from the caller's cache (the API process's own, or Redis), or — for a caller
   without one, such as the CLI — from Redis when ``ALTTEXT_REDIS_URL`` is set. With Redis down
   they are left to expire within ``ALTTEXT_CACHE_TTL_S`` (logged); no request can reach them,
   as their key starts with an account id that never comes back. An in-process cache of
   another process (the CLI erasing while the server runs without Redis) cannot be reached and
   expires the same way.
4. The database's own files keep no copy (``db.scrub_sqlite``, ``db.vacuum_postgres``): on
   SQLite, whose connections run with ``secure_delete`` (deleted rows are zeroed), the WAL is
   checkpointed and emptied, so neither the database file nor its ``-wal`` holds the rows; on
   PostgreSQL the tables touched are vacuumed in the background (docs/privacy.md says what
   that does and does not promise).

What is kept, field by field (docs/privacy.md repeats this):

- ``credit_entries`` of kind purchase, refund, adjustment: ``id`` (our document number),
  ``account_id`` (now the anonymised id), ``kind``, ``credits`` (what was supplied),
  ``amount_usd`` (what was paid or refunded), ``reference`` (Stripe's payment or charge id: the
  link to Stripe's own records, which Stripe keeps under its legal duties), ``note`` (written by
  the service: payment ids and amounts; any occurrence of the old id or address is replaced),
  ``created_at`` (the tax period). ``receipt_url`` is cleared: the receipt page shows the buyer's
  details. Why: commercial and tax law (e.g. 10 years under German HGB §257 / AO §147) requires
  keeping the records of sales and refunds.
- ``accounts``: the anonymised identity: ``id``, ``status`` = erased, ``erased_at``,
  ``created_at``, ``credits_balance`` = the sum of the kept entries (so the ledger invariant
  holds), ``email`` = ``<anon id>@erased.invalid`` (the column is required and unique).
- ``audit_events``: ``id``, ``actor``, ``action``, ``detail`` (ids, counts, field names; never
  content), ``created_at``, with ``account_id`` now the anonymised id. Why: accountability
  (Art. 5(2)): showing that the requests, this erasure included, were honoured.
- ``stripe_events`` about the account: ``id``, ``type``, ``state``, ``payment_key``, times and
  attempt count stay so a redelivered event is still recognised and never books twice;
  ``payload`` becomes ``{"id", "type", "erased": true}``, ``detail`` "scrubbed on erasure",
  ``account_id`` null.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from alttext.accounts.models import Account
from alttext.billing.models import CreditEntry, StripeEvent
from alttext.config import Settings
from alttext.db import Base, scrub_sqlite, transaction, utcnow, vacuum_postgres
from alttext.errors import InvalidRequest, NotFound
from alttext.ids import new_id
from alttext.privacy.audit import Actor, record
from alttext.privacy.models import AuditEvent

if TYPE_CHECKING:
    # Imported where used: Stripe's SDK only for an account that bought, the result cache
    # (which brings the describe engine) only with Redis; `alttext accounts erase` on an
    # account that never paid loads neither (docs/cli.md, start-up).
    from alttext.billing.stripe_client import StripeGateway
    from alttext.result_cache import ResultCache

log = logging.getLogger("alttext.privacy.erasure")

KEPT_KINDS = ("purchase", "refund", "adjustment")
# Tables whose rows are moved or scrubbed, not deleted (plus the account row itself, last).
_HANDLED = {"accounts", "credit_entries", "audit_events", "stripe_events"}

GatewayFactory = Callable[[Settings], "StripeGateway"]


@dataclass(frozen=True)
class ErasureSummary:
    accounting_id: str
    kept: dict[str, int]
    deleted: dict[str, int] = field(default_factory=dict)


def check_confirmation(account_email: str, confirm: str) -> None:
    if confirm.strip().lower() != account_email.lower():
        raise InvalidRequest(
            "To erase the account, send its e-mail address as 'confirm'. Nothing was done.",
            errors=[{"field": "confirm", "message": "does not match the account's address"}],
        )


async def _delete_stripe_customer(
    settings: Settings, customer_id: str | None, gateway_factory: GatewayFactory | None
) -> bool:
    if customer_id is None:
        return False
    from alttext.billing.stripe_client import StripeGateway, configured_secret

    if configured_secret(settings.stripe_secret_key) is None:
        return False
    async with (gateway_factory or StripeGateway.from_settings)(settings) as gateway:
        await gateway.delete_customer(customer_id)  # a 503 AppError on failure
    return True


def _scrub(text: str | None, old: tuple[str, ...], new: str) -> str | None:
    if text is None:
        return None
    for value in old:
        if value:
            text = text.replace(value, new)
    return text


async def _move_accounting(
    session: AsyncSession, account: Account, anon_id: str
) -> tuple[int, int]:
    rows = (
        await session.execute(
            select(CreditEntry).where(
                CreditEntry.account_id == account.id, CreditEntry.kind.in_(KEPT_KINDS)
            )
        )
    ).scalars()
    old = (account.id, account.email, account.stripe_customer_id or "")
    kept, total = 0, 0
    for entry in rows:
        entry.account_id = anon_id
        entry.receipt_url = None
        entry.note = _scrub(entry.note, old, "[erased]")
        entry.reference = _scrub(entry.reference, old, anon_id) or entry.reference
        kept += 1
        total += int(entry.credits)
    return kept, total


async def _scrub_stripe_events(session: AsyncSession, account: Account) -> int:
    needles = [account.id] + ([account.stripe_customer_id] if account.stripe_customer_id else [])
    condition = or_(
        StripeEvent.account_id == account.id,
        *(StripeEvent.payload.contains(n, autoescape=True) for n in needles),
    )
    rows = list((await session.execute(select(StripeEvent).where(condition))).scalars())
    for row in rows:
        row.payload = json.dumps({"id": row.id, "type": row.type, "erased": True})
        row.detail = "scrubbed on erasure"
        row.account_id = None
        if row.state == "pending":
            row.state = "ignored"  # nothing left to process it with
    return len(rows)


async def _delete_rest(session: AsyncSession, account_id: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    # Every table the process knows (``open_process`` loads the models registry), so a table
    # added by a higher layer (jobs) is erased too without this domain importing it.
    for table in reversed(Base.metadata.sorted_tables):
        if table.name in _HANDLED or "account_id" not in table.c:
            continue
        result = await session.execute(delete(table).where(table.c.account_id == account_id))
        counts[table.name] = int(getattr(result, "rowcount", 0) or 0)
    entries = await session.execute(delete(CreditEntry).where(CreditEntry.account_id == account_id))
    counts["credit_entries"] = int(getattr(entries, "rowcount", 0) or 0)
    return counts


async def _erase_rows(session: AsyncSession, account_id: str, *, actor: Actor) -> ErasureSummary:
    account = await session.get(Account, account_id, with_for_update=True)
    if account is None:
        raise NotFound("The account no longer exists.")
    anon_id = new_id("anon")
    now = utcnow()
    session.add(
        Account(
            id=anon_id,
            email=f"{anon_id}@erased.invalid",
            status="erased",
            erased_at=now,
            created_at=now,
            credits_balance=0,
        )
    )
    await session.flush()
    kept_entries, kept_credits = await _move_accounting(session, account, anon_id)
    audit = await session.execute(
        update(AuditEvent).where(AuditEvent.account_id == account.id).values(account_id=anon_id)
    )
    scrubbed = await _scrub_stripe_events(session, account)
    await session.flush()
    deleted = await _delete_rest(session, account.id)
    await session.execute(
        update(Account).where(Account.id == anon_id).values(credits_balance=kept_credits)
    )
    await session.delete(account)
    await session.flush()
    kept = {
        "credit_entries": kept_entries,
        "audit_events": int(getattr(audit, "rowcount", 0) or 0),
        "stripe_events": scrubbed,
    }
    await record(session, anon_id, "erase", actor=actor, kept=kept, deleted=deleted)
    kept["audit_events"] += 1
    return ErasureSummary(accounting_id=anon_id, kept=kept, deleted=deleted)


_VACUUMS: set[asyncio.Task[None]] = set()  # running in the background; referenced till done
VACUUM_WAIT_S = 2.0  # the erasure's answer waits this long for the VACUUM, then goes on


async def _vacuum(engine: AsyncEngine, tables: list[str]) -> None:
    try:
        await vacuum_postgres(engine, tables)
    except (SQLAlchemyError, OSError) as exc:
        log.warning(
            "VACUUM after an erasure failed; autovacuum will prune the rows later",
            extra={"error_type": type(exc).__name__},
        )


async def _scrub_files(sessions: async_sessionmaker[AsyncSession], summary: ErasureSummary) -> None:
    """Once the rows are deleted: leave no copy in the database's own files (docs/privacy.md,
    "Erasure on disk"). SQLite: the WAL is checkpointed and emptied now (``secure_delete``
    zeroed the rows). PostgreSQL: the tables touched are vacuumed, outside any transaction as
    VACUUM must be; small tables are done within ``VACUUM_WAIT_S``, large ones (it reads their
    indexes) go on in the background."""
    engine = sessions.kw.get("bind")
    if not isinstance(engine, AsyncEngine):
        return
    try:
        if not await scrub_sqlite(engine):
            log.warning("the WAL checkpoint after an erasure was held up by a reader")
    except (SQLAlchemyError, OSError) as exc:
        log.warning(
            "the WAL checkpoint after an erasure failed", extra={"error_type": type(exc).__name__}
        )
    if engine.dialect.name == "postgresql":
        touched = {"accounts", *(t for t, n in {**summary.deleted, **summary.kept}.items() if n)}
        task = asyncio.get_running_loop().create_task(_vacuum(engine, sorted(touched)))
        _VACUUMS.add(task)
        task.add_done_callback(_VACUUMS.discard)
        await asyncio.wait({task}, timeout=VACUUM_WAIT_S)  # not cancelled when it takes longer


async def _clear_cached_results(
    settings: Settings, cache: ResultCache | None, account_id: str
) -> int:
    if cache is not None:
        return await cache.clear_account(account_id)
    if not settings.redis_url:
        return 0  # in-process caches live in the API processes (see the module's docstring)
    from alttext.result_cache import build_result_cache

    transient = build_result_cache(settings)
    try:
        return await transient.clear_account(account_id)
    finally:
        await transient.aclose()


async def erase_account(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    account_id: str,
    *,
    confirm: str,
    actor: Actor,
    gateway_factory: GatewayFactory | None = None,
    cache: ResultCache | None = None,
) -> ErasureSummary:
    """``cache`` is the process's result cache (``services.result_cache``), whose entries of
    the account are deleted once the rows are gone. ``gateway_factory`` builds the Stripe
    gateway (default ``StripeGateway.from_settings``; tests pass a fake)."""
    async with sessions() as session:
        account = await session.get(Account, account_id)
    if account is None or account.status == "erased":
        raise NotFound("The account no longer exists.")
    try:
        check_confirmation(account.email, confirm)
    except InvalidRequest:
        async with transaction(sessions) as session:
            await record(session, account_id, "erase_refused", actor=actor, reason="confirm")
        raise
    await _delete_stripe_customer(settings, account.stripe_customer_id, gateway_factory)
    async with transaction(sessions) as session:
        summary = await _erase_rows(session, account_id, actor=actor)
    await _scrub_files(sessions, summary)
    cached = await _clear_cached_results(settings, cache, account_id)
    log.info(
        "account erased",
        extra={"accounting_id": summary.accounting_id, "cached_results_deleted": cached},
    )
    return summary
