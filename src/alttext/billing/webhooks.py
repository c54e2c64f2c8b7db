"""The Stripe webhook inbox: verify, store once per event id, then process idempotently.

Receiving commits the inbox row first, in its own short transaction, so a verified event is
never lost; processing follows in a second short transaction. If processing fails (a database
hiccup, a malformed object) the row stays ``pending`` and ``process_pending`` — run it
periodically — tries again. Processing is idempotent: the row is locked and its state checked,
and every ledger booking has a unique reference.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.billing.models import StripeEvent
from alttext.billing.stripe_client import configured_secret, verify_event
from alttext.billing.stripe_events import handle, payment_key, slim_event
from alttext.db import transaction, utcnow
from alttext.errors import ServiceUnavailable

log = logging.getLogger("alttext.billing.webhooks")

MAX_WEBHOOK_BYTES = 512 * 1024
# Stripe retries a delivery for up to three days: an event still waiting for its purchase
# after that will not see it, and is flagged for a human.
WAIT_LIMIT = timedelta(days=3)


class WebhooksNotConfigured(ServiceUnavailable):
    title = "Stripe webhooks are not configured"


@dataclass(frozen=True)
class Receipt:
    event_id: str
    type: str
    duplicate: bool
    state: str


async def receive(
    sessions: async_sessionmaker[AsyncSession],
    *,
    payload: bytes,
    signature: str | None,
    secret: str | None,
) -> Receipt:
    usable = configured_secret(secret)
    if usable is None:
        # Refused, not skipped: verifying against an empty secret would accept forged events.
        # 503 makes Stripe retry for three days, so nothing is lost while it gets configured.
        raise WebhooksNotConfigured(
            "Stripe webhooks are not configured on this deployment "
            "(ALTTEXT_STRIPE_WEBHOOK_SECRET is not set); events are refused unverified.",
            retry_after=300,
        )
    event = verify_event(payload, signature, usable)
    slim = slim_event(event)
    obj = slim["data"]["object"]
    created = event.get("created")
    row = StripeEvent(
        id=event["id"],
        type=event["type"],
        state="pending",
        payment_key=payment_key(event["type"], obj),
        payload=json.dumps(slim, separators=(",", ":")),
        attempts=0,
        livemode=bool(event.get("livemode")),
        stripe_created_at=datetime.fromtimestamp(created, UTC)
        if isinstance(created, int)
        else None,
        received_at=utcnow(),
    )
    duplicate = False
    async with transaction(sessions) as session:
        if await session.get(StripeEvent, row.id) is not None:
            duplicate = True
        else:
            try:
                async with session.begin_nested():
                    session.add(row)
                    await session.flush()
            except IntegrityError:
                duplicate = True  # a concurrent delivery of the same event won the insert
    # A redelivery of a row still pending is a free retry; processing checks the state anyway.
    state = await process_event(sessions, event["id"])
    return Receipt(event_id=event["id"], type=event["type"], duplicate=duplicate, state=state)


async def process_event(
    sessions: async_sessionmaker[AsyncSession], event_id: str, *, now: datetime | None = None
) -> str:
    """Apply one inbox event if it is pending; return its state afterwards."""
    now = now or utcnow()
    try:
        async with transaction(sessions) as session:
            row = (
                await session.execute(
                    select(StripeEvent).where(StripeEvent.id == event_id).with_for_update()
                )
            ).scalar_one_or_none()
            if row is None:
                return "missing"
            if row.state != "pending":
                return row.state
            event = json.loads(row.payload)
            outcome = await handle(session, row.type, event["data"]["object"])
            if outcome.state == "pending" and row.received_at < now - WAIT_LIMIT:
                outcome.state, outcome.detail = "unmatched", f"gave up {outcome.detail}"
            row.attempts += 1
            row.state = outcome.state
            row.detail = outcome.detail[:500]
            row.account_id = outcome.account_id or row.account_id
            if outcome.state != "pending":
                row.processed_at = now
            key = row.payment_key
    except Exception as exc:
        log.warning(
            "stripe event processing failed",
            extra={"event_id": event_id, "error_type": type(exc).__name__},
            exc_info=exc,
        )
        await _note_failure(sessions, event_id, type(exc).__name__)
        return "pending"
    if outcome.state == "unmatched":
        log.warning("stripe event flagged", extra={"event_id": event_id, "detail": outcome.detail})
    if outcome.booked_purchase and key:
        await _process_waiting(sessions, key, exclude=event_id, now=now)
    return outcome.state


async def _note_failure(
    sessions: async_sessionmaker[AsyncSession], event_id: str, error: str
) -> None:
    try:
        async with transaction(sessions) as session:
            await session.execute(
                update(StripeEvent)
                .where(StripeEvent.id == event_id, StripeEvent.state == "pending")
                .values(attempts=StripeEvent.attempts + 1, detail=f"processing failed: {error}")
            )
    except Exception:
        log.warning("could not record the failure", extra={"event_id": event_id})


def _order_key(row: StripeEvent) -> tuple[datetime, int, datetime]:
    """Stripe's order: creation time (whole seconds), then, for refunds of one charge, the
    cumulative amount refunded, which only grows; so waiting refunds apply oldest first."""
    refunded = 0
    if row.type == "charge.refunded":
        obj = json.loads(row.payload)["data"]["object"]
        refunded = obj.get("amount_refunded") if isinstance(obj.get("amount_refunded"), int) else 0
    created = row.stripe_created_at or row.received_at
    return (created, refunded, row.received_at)


async def _pending_ids(
    sessions: async_sessionmaker[AsyncSession], *conditions: Any, limit: int | None = None
) -> list[str]:
    async with sessions() as session:
        query = (
            select(StripeEvent)
            .where(StripeEvent.state == "pending", *conditions)
            .order_by(StripeEvent.received_at)
            .limit(limit)
        )
        rows = list((await session.execute(query)).scalars())
    return [row.id for row in sorted(rows, key=_order_key)]


async def _process_waiting(
    sessions: async_sessionmaker[AsyncSession], key: str, *, exclude: str, now: datetime
) -> None:
    """Events that arrived before their purchase (refund, receipt, dispute), in Stripe order."""
    ids = await _pending_ids(sessions, StripeEvent.payment_key == key, StripeEvent.id != exclude)
    for event_id in ids:
        await process_event(sessions, event_id, now=now)


async def process_pending(
    sessions: async_sessionmaker[AsyncSession], *, batch: int = 200, now: datetime | None = None
) -> int:
    """Retry pending events (the periodic sweeper). Returns how many left ``pending``."""
    ids = await _pending_ids(sessions, limit=batch)
    done = 0
    for event_id in ids:
        if await process_event(sessions, event_id, now=now) != "pending":
            done += 1
    return done
