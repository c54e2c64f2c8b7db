"""Outbound webhooks for bulk jobs: signing secrets and the events a job's runner queues.

Deliveries follow Standard Webhooks (https://www.standardwebhooks.com): ``webhook-id``,
``webhook-timestamp`` and ``webhook-signature`` headers; the delivery loop is in
:mod:`alttext.jobs.webhook_delivery`.

Signing secrets are never stored. An account's secret is derived from ``ALTTEXT_SECRET_KEY``,
its id and a version number (HMAC-SHA256), so a database dump gives no one the power to forge
a delivery. ``WebhookSigning`` holds only the version and when it last changed; an account
without a row has never rotated and signs with version 1.

Rotation: for :data:`ROTATION_GRACE` (24 h) after a rotation every delivery carries two
signatures, with the new and the previous secret (``webhook-signature: v1,<new> v1,<old>``,
which the spec allows), so a receiver verifies with either while it switches and loses no
delivery. Rotating again inside that window ends the grace of the older secret at once: only
the newest two secrets ever sign.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.config import Settings
from alttext.db import iso_utc, utcnow
from alttext.ids import new_id
from alttext.jobs.webhook_schemas import (
    AttemptOutcome,
    DeliveryList,
    DeliveryOut,
    WebhookEvent,
)
from alttext.jobstore.models import (
    WEBHOOK_EVENTS,
    WebhookAttempt,
    WebhookMessage,
    WebhookSigning,
)

SECRET_PREFIX = "whsec_"  # noqa: S105 - the prefix of every secret, not a secret
ROTATION_GRACE = timedelta(hours=24)


def signing_secret(settings: Settings, account_id: str, version: int) -> str:
    """The account's signing secret of ``version``: ``whsec_`` + base64 of 32 bytes."""
    digest = hmac.new(
        settings.secret_key.encode("utf-8"),
        f"webhook-signing:{account_id}:{version}".encode(),
        hashlib.sha256,
    ).digest()
    return SECRET_PREFIX + base64.b64encode(digest).decode("ascii")


@dataclass(frozen=True)
class SigningKeys:
    """The secrets that sign an account's deliveries now."""

    secret: str  # the current one, shown to the customer
    version: int
    rotated_at: datetime | None
    previous: str | None  # still signing until ``rotated_at + ROTATION_GRACE``

    @property
    def signing(self) -> tuple[str, ...]:
        return (self.secret,) if self.previous is None else (self.secret, self.previous)


async def signing_keys(
    session: AsyncSession, settings: Settings, account_id: str, *, now: datetime | None = None
) -> SigningKeys:
    # Columns, not the entity: a row this session already holds may predate a rotation.
    row = (
        await session.execute(
            select(WebhookSigning.version, WebhookSigning.rotated_at).where(
                WebhookSigning.account_id == account_id
            )
        )
    ).one_or_none()
    version, rotated_at = (row.version, row.rotated_at) if row else (1, None)
    in_grace = rotated_at is not None and (now or utcnow()) < rotated_at + ROTATION_GRACE
    return SigningKeys(
        secret=signing_secret(settings, account_id, version),
        version=version,
        rotated_at=rotated_at,
        previous=signing_secret(settings, account_id, version - 1)
        if in_grace and version > 1
        else None,
    )


async def current_secret(session: AsyncSession, settings: Settings, account_id: str) -> str:
    return (await signing_keys(session, settings, account_id)).secret


async def rotate_secret(session: AsyncSession, settings: Settings, account_id: str) -> str:
    """Bump the account's version and return the new secret; joins the caller's transaction."""
    now = utcnow()
    bump = (
        update(WebhookSigning)
        .where(WebhookSigning.account_id == account_id)
        .values(version=WebhookSigning.version + 1, rotated_at=now)
        .execution_options(synchronize_session=False)
    )
    # The UPDATE is atomic, so two rotations at once make two versions rather than one.
    if (await session.execute(bump)).rowcount == 0:  # type: ignore[attr-defined]
        try:
            async with session.begin_nested():
                # Never rotated: version 1 was implied, so the first rotation makes 2.
                session.add(WebhookSigning(account_id=account_id, version=2, rotated_at=now))
        except IntegrityError:
            # Another rotation created the row first (PostgreSQL; SQLite serialises writers).
            await session.execute(bump)
    version = await session.scalar(
        select(WebhookSigning.version).where(WebhookSigning.account_id == account_id)
    )
    assert version is not None
    return signing_secret(settings, account_id, version)


def event_payload(event: str, job: dict[str, Any], *, at: datetime | None = None) -> str:
    """The JSON body of an event, as sent and signed (compact, ASCII only)."""
    document = {"type": event, "timestamp": iso_utc(at or utcnow()), "data": {"job": job}}
    return json.dumps(document, separators=(",", ":"))


async def enqueue_event(
    session: AsyncSession,
    *,
    account_id: str,
    job_id: str,
    url: str,
    event: str,
    job: dict[str, Any],
) -> str:
    """Queue ``event`` about a job for delivery to ``url``; joins the caller's transaction, so
    a rollback takes the message back too. Returns the message id (the ``webhook-id``)."""
    if event not in WEBHOOK_EVENTS:
        raise ValueError(f"unknown webhook event {event!r}; one of {', '.join(WEBHOOK_EVENTS)}")
    now = utcnow()
    message = WebhookMessage(
        id=new_id("msg"),
        account_id=account_id,
        job_id=job_id,
        event=event,
        url=url,
        payload=event_payload(event, job, at=now),
        state="pending",
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(message)
    await session.flush()
    return message.id


MAX_PAGE = 100


async def list_deliveries(
    session: AsyncSession, account_id: str, *, limit: int, starting_after: str | None = None
) -> DeliveryList:
    """The account's delivery attempts, newest first; ids are time-ordered, so an id is a
    stable cursor."""
    query = (
        select(WebhookAttempt, WebhookMessage.job_id)
        .join(WebhookMessage, WebhookMessage.id == WebhookAttempt.message_id)
        .where(WebhookAttempt.account_id == account_id)
    )
    if starting_after:
        query = query.where(WebhookAttempt.id < starting_after)
    rows = (await session.execute(query.order_by(WebhookAttempt.id.desc()).limit(limit + 1))).all()
    data = [
        DeliveryOut(
            id=attempt.id,
            message_id=attempt.message_id,
            job_id=job_id,
            event=cast(WebhookEvent, attempt.event),
            url=attempt.url,
            attempt=attempt.attempt,
            outcome=cast(AttemptOutcome, attempt.outcome),
            status_code=attempt.status_code,
            latency_ms=attempt.latency_ms,
            attempted_at=iso_utc(attempt.attempted_at),
        )
        for attempt, job_id in rows[:limit]
    ]
    return DeliveryList(data=data, has_more=len(rows) > limit)
