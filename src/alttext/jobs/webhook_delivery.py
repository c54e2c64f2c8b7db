"""Delivering queued webhook messages: claim, sign, POST, record, and retry with backoff.

A message is claimed with a short lease by a conditional UPDATE (it must still be pending, due
and unleased), so two processes never send the same attempt; the attempt number taken with the
claim fences the write of its outcome, so a sender whose lease ran out cannot overwrite what a
later attempt decided. A crash mid-send leaves a lease that expires; the message is sent again,
under the same ``webhook-id``, which is what receivers deduplicate on.

Each attempt is a POST through the SSRF-checked fetcher (no redirects followed; private
addresses only with ``ALTTEXT_ALLOW_PRIVATE_URLS``), signed afresh with the attempt's own
``webhook-timestamp``. A 2xx answer is delivered; anything else (any other status, 3xx
included, a timeout, a network error, a refused address) is a failed attempt.

Retry schedule: attempt *n* failed, the next comes after ``uniform(0, ceiling)`` seconds but at
least ``base / 2``, where ``ceiling = base * 2**(n - 1)`` capped at :data:`MAX_RETRY_DELAY_S`
(2 h) and ``base`` is ``ALTTEXT_WEBHOOK_RETRY_BASE_S`` (5 s). With the defaults the ceilings
run 5 s, 10 s, 20 s, … 85 min, then 2 h: about 11 attempts in the first hour and a half, then
one every hour on average. The full jitter spreads a burst of messages for a receiver that just
came back. No attempt is scheduled past ``created_at + ALTTEXT_WEBHOOK_RETRY_WINDOW_S`` (24 h):
the last one is made when the window ends, and a failure then leaves the message ``failed``.

Every attempt is recorded (outcome, status, latency), never a body in either direction; of
the receiver's answer at most :data:`RECEIVER_BODY_CAP` bytes are read, and then dropped.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import httpx
from sqlalchemy import ColumnElement, or_, select, update
from standardwebhooks import Webhook

from alttext import metrics
from alttext.db import transaction, utcnow
from alttext.describe.errors import ImageFetchFailed, ImageTooLarge
from alttext.describe.fetch import (
    FetchLimits,
    IPAddress,
    check_url,
    fetch_url,
    is_forbidden_address,
    parse_ip_host,
)
from alttext.ids import new_id
from alttext.jobs.webhooks import signing_keys
from alttext.jobstore.models import WebhookAttempt, WebhookMessage
from alttext.process import Services
from alttext.scheduler import PeriodicTask

log = logging.getLogger("alttext.jobs.webhooks")

Outcome = Literal["delivered", "http_error", "timeout", "network_error", "refused"]
OUTCOMES: tuple[Outcome, ...] = ("delivered", "http_error", "timeout", "network_error", "refused")
RECEIVER_BODY_CAP = 64 * 1024
MAX_RETRY_DELAY_S = 2 * 3600.0
DELIVERY_CONCURRENCY = 8  # sends in flight per deliver_due call
BATCH = 50
TICK_S = 1.0
# The lease outlives the send (bounded by the webhook timeout) with room for the two short
# transactions around it, so a live sender never loses its message to a second one.
LEASE_MARGIN_S = 30.0


@dataclass(frozen=True)
class Claimed:
    """A message taken for one attempt, with what signing it needs."""

    id: str
    account_id: str
    event: str
    url: str
    payload: str
    attempt: int  # 1 for the first
    created_at: datetime
    secrets: tuple[str, ...]  # the current one first; two during a rotation's grace period


@dataclass(frozen=True)
class AttemptResult:
    outcome: Outcome
    status_code: int | None
    latency_ms: int


def retry_delay(attempt: int, base_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt ``attempt`` (1-based): full jitter, at least half
    the base, under a ceiling that doubles per attempt up to :data:`MAX_RETRY_DELAY_S`."""
    ceiling = min(base_s * 2 ** min(attempt - 1, 40), max(MAX_RETRY_DELAY_S, base_s))
    return max(base_s / 2, (rng or random).uniform(0, ceiling))


async def deliver_due(services: Services, *, limit: int = BATCH) -> int:
    """Make one attempt for each of up to ``limit`` due messages, a few at a time; returns how
    many were attempted (0: nothing was due, or other processes took it all)."""
    claimed = await _claim_due(services, limit)
    if not claimed:
        return 0
    gate = asyncio.Semaphore(DELIVERY_CONCURRENCY)

    async def one(message: Claimed) -> None:
        async with gate:
            try:
                result = await send_attempt(services, message)
                await record_attempt(services, message, result)
            except Exception:
                # The lease runs out and the message is attempted again; the rest go on.
                log.warning(
                    "webhook attempt failed to run",
                    extra={"message_id": message.id},
                    exc_info=True,
                )

    await asyncio.gather(*(one(m) for m in claimed))
    return len(claimed)


def _due(now: datetime) -> list[ColumnElement[bool]]:
    return [
        WebhookMessage.state == "pending",
        WebhookMessage.next_attempt_at <= now,
        or_(WebhookMessage.lease_until.is_(None), WebhookMessage.lease_until <= now),
    ]


async def _claim_due(services: Services, limit: int) -> list[Claimed]:
    settings = services.settings
    now = utcnow()
    lease_until = now + timedelta(seconds=settings.webhook_timeout_s + LEASE_MARGIN_S)
    async with transaction(services.sessions) as session:
        # SKIP LOCKED (PostgreSQL; SQLite serialises writers anyway) keeps concurrent claimers
        # from queueing behind each other's rows; the conditional UPDATE is what decides.
        candidates = (
            await session.scalars(
                select(WebhookMessage.id)
                .where(*_due(now))
                .order_by(WebhookMessage.next_attempt_at, WebhookMessage.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        ).all()
        taken: list[str] = []
        for message_id in candidates:
            result = await session.execute(
                update(WebhookMessage)
                .where(WebhookMessage.id == message_id, *_due(now))
                .values(lease_until=lease_until, attempts=WebhookMessage.attempts + 1)
                .execution_options(synchronize_session=False)
            )
            if result.rowcount == 1:  # type: ignore[attr-defined]
                taken.append(message_id)
        if not taken:
            return []
        rows = (
            await session.execute(
                select(
                    WebhookMessage.id,
                    WebhookMessage.account_id,
                    WebhookMessage.event,
                    WebhookMessage.url,
                    WebhookMessage.payload,
                    WebhookMessage.attempts,
                    WebhookMessage.created_at,
                ).where(WebhookMessage.id.in_(taken))
            )
        ).all()
        keys = {
            account_id: (await signing_keys(session, settings, account_id, now=now)).signing
            for account_id in {row.account_id for row in rows}
        }
    return [
        Claimed(
            id=row.id,
            account_id=row.account_id,
            event=row.event,
            url=row.url,
            payload=row.payload,
            attempt=row.attempts,
            created_at=row.created_at,
            secrets=keys[row.account_id],
        )
        for row in sorted(rows, key=lambda r: taken.index(r.id))
    ]


def signed_headers(message_id: str, payload: str, secrets: Sequence[str]) -> dict[str, str]:
    """The Standard Webhooks headers of one attempt: signed now, with every given secret."""
    sent_at = utcnow().replace(microsecond=0)
    return {
        "Content-Type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(sent_at.timestamp())),
        "webhook-signature": " ".join(
            Webhook(secret).sign(message_id, sent_at, payload) for secret in secrets
        ),
    }


async def send_attempt(services: Services, message: Claimed) -> AttemptResult:
    """POST the message once and classify what happened; never raises for the receiver's
    failures. Holds no database connection."""
    settings = services.settings
    limits = FetchLimits(
        max_bytes=RECEIVER_BODY_CAP,
        total_timeout_s=settings.webhook_timeout_s,
        max_redirects=0,
        allow_private=settings.allow_private_urls,
    )
    try:
        # The URL's shape and a literal address are judged before anything resolves it.
        parse_ip_host(httpx.URL(check_url(message.url, "webhook")).host)
    except (ImageFetchFailed, ValueError, httpx.InvalidURL):
        return AttemptResult("refused", None, 0)
    refused: list[IPAddress] = []

    def address_allowed(ip: IPAddress) -> bool:
        allowed = limits.allow_private or not is_forbidden_address(ip)
        if not allowed:
            refused.append(ip)
        return allowed

    started = time.perf_counter()
    status: int | None = None
    try:
        fetched = await fetch_url(
            message.url,
            services.runtime.http,
            limits,
            noun="webhook",
            method="POST",
            accept="*/*",
            content=message.payload.encode("utf-8"),
            headers=signed_headers(message.id, message.payload, message.secrets),
            follow_redirects=False,
            address_allowed=address_allowed,
        )
        status = fetched.status
        outcome: Outcome = "delivered" if 200 <= status < 300 else "http_error"
    except ImageTooLarge:
        # Raised only while reading a 2xx answer: the receiver took the message.
        outcome = "delivered"
    except ImageFetchFailed as exc:
        outcome = _failure_outcome(exc, refused=bool(refused))
    latency_ms = round((time.perf_counter() - started) * 1000)
    return AttemptResult(outcome, status, latency_ms)


def _failure_outcome(exc: ImageFetchFailed, *, refused: bool) -> Outcome:
    if refused:
        return "refused"
    # The fetcher raises its own error ``from None``; the context still names the cause.
    cause = exc.__context__
    if isinstance(cause, TimeoutError | httpx.TimeoutException):
        return "timeout"
    return "network_error"


async def record_attempt(services: Services, message: Claimed, result: AttemptResult) -> None:
    """Store one attempt, count it (metrics) and decide the message's next state; every
    attempt passes through here exactly once."""
    metrics.record_webhook_delivery(result.outcome)
    settings = services.settings
    now = utcnow()
    values: dict[str, object] = {"lease_until": None}
    if result.outcome == "delivered":
        values |= {"state": "delivered", "finished_at": now}
    else:
        deadline = message.created_at + timedelta(seconds=settings.webhook_retry_window_s)
        if now >= deadline:
            values |= {"state": "failed", "finished_at": now}
        else:
            delay = retry_delay(message.attempt, settings.webhook_retry_base_s)
            values["next_attempt_at"] = min(now + timedelta(seconds=delay), deadline)
    async with transaction(services.sessions) as session:
        changed = await session.execute(
            update(WebhookMessage)
            .where(
                WebhookMessage.id == message.id,
                WebhookMessage.attempts == message.attempt,
                WebhookMessage.state == "pending",
            )
            .values(**values)
            .execution_options(synchronize_session=False)
        )
        # Nothing changed: a later attempt took over (this one outlived its lease) and decides
        # the state; this attempt still happened and is recorded, unless the message is gone.
        taken_over = changed.rowcount == 0  # type: ignore[attr-defined]
        if taken_over and await session.get(WebhookMessage, message.id) is None:
            return
        session.add(
            WebhookAttempt(
                id=new_id("wha"),
                message_id=message.id,
                account_id=message.account_id,
                event=message.event,
                url=message.url,
                attempt=message.attempt,
                outcome=result.outcome,
                status_code=result.status_code,
                latency_ms=result.latency_ms,
                attempted_at=now,
            )
        )
    if values.get("state") == "failed":
        log.info(
            "webhook given up after the retry window",
            extra={"message_id": message.id, "attempts": message.attempt},
        )


def periodic_tasks(services: Services) -> list[PeriodicTask]:
    """Deliver what is due, once per cluster, every second."""

    async def drain() -> None:
        # A full batch suggests more is due; a short one means the queue is drained for now.
        while await deliver_due(services, limit=BATCH) == BATCH:
            pass

    return [PeriodicTask("webhooks.deliver", every_s=TICK_S, run=drain)]
