"""Rows of the bulk-job tables, written straight to the database (no job runs): a job with its
items, and webhook messages about it with their delivery attempts. The models have no
relationships, so each parent is flushed before its children."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import count

from sqlalchemy.ext.asyncio import AsyncSession

from alttext.db import utcnow
from alttext.jobstore.models import Job, JobItem, WebhookAttempt, WebhookMessage, WebhookSigning

_seq = count()


def _id(prefix: str) -> str:
    return f"{prefix}_{next(_seq):08d}"


@dataclass
class SeededJob:
    job_id: str
    item_ids: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)
    attempt_ids: list[str] = field(default_factory=list)


async def add_job(
    session: AsyncSession,
    account_id: str,
    *,
    items: int = 2,
    status: str = "completed",
    created_at: datetime | None = None,
    finished_at: datetime | None = None,
    tag: str = "",
) -> SeededJob:
    """A job with ``items`` items: URLs, context text, existing and generated alt text."""
    now = utcnow()
    created = created_at or (finished_at - timedelta(hours=1) if finished_at else now)
    job = Job(
        id=_id("job"),
        account_id=account_id,
        key_id="key_seeded",
        status=status,
        defaults=json.dumps({"context": f"Shop page {tag}", "language": "en"}),
        source_url=f"https://shop.example/{tag}",
        max_pages=5,
        crawl_state="done",
        pages_crawled=1,
        webhook_url=f"https://hooks.example/{tag}",
        total_items=items,
        credits_spent=items,
        created_at=created,
        started_at=created,
        finished_at=finished_at,
    )
    session.add(job)
    await session.flush()
    seeded = SeededJob(job.id)
    for seq in range(items):
        item = JobItem(
            id=_id("item"),
            job_id=job.id,
            account_id=account_id,
            seq=seq,
            client_id=f"img-{seq}",
            image_url=f"https://shop.example/{tag}/img/{seq}.jpg",
            page_url=f"https://shop.example/{tag}",
            options=json.dumps({"context": f"Product {seq} {tag}"}),
            existing_alt=None if seq % 2 else "IMG_0001.jpg",
            status="succeeded" if status != "running" else "pending",
            alt_text=f"A red bicycle number {seq} {tag}",
            decorative=False,
            role="informative",
            needs_review=seq % 3 == 0,
            review_reasons=json.dumps(["low_confidence"] if seq % 3 == 0 else []),
            problem=None if seq % 5 else json.dumps({"code": "image_fetch_failed"}),
            model="m/one",
            credits=1,
            finished_at=finished_at,
        )
        session.add(item)
        seeded.item_ids.append(item.id)
    return seeded


async def add_message(
    session: AsyncSession,
    account_id: str,
    job_id: str | None,
    *,
    state: str = "delivered",
    finished_at: datetime | None = None,
    created_at: datetime | None = None,
    attempts: int = 2,
    tag: str = "",
) -> tuple[str, list[str]]:
    """A webhook message with ``attempts`` delivery attempts: (message id, attempt ids)."""
    created = created_at or (finished_at - timedelta(minutes=5) if finished_at else utcnow())
    message = WebhookMessage(
        id=_id("msg"),
        account_id=account_id,
        job_id=job_id,
        event="job.completed",
        url=f"https://hooks.example/{tag}",
        payload=json.dumps({"type": "job.completed", "data": {"job": {"id": job_id}}}),
        state=state,
        attempts=attempts,
        next_attempt_at=created,
        created_at=created,
        finished_at=finished_at,
    )
    session.add(message)
    await session.flush()
    attempt_ids = []
    for n in range(1, attempts + 1):
        attempt = WebhookAttempt(
            id=_id("wha"),
            message_id=message.id,
            account_id=account_id,
            event="job.completed",
            url=message.url,
            attempt=n,
            outcome="delivered" if n == attempts and state == "delivered" else "http_error",
            status_code=200 if n == attempts and state == "delivered" else 500,
            latency_ms=40 + n,
            attempted_at=created + timedelta(seconds=n),
        )
        session.add(attempt)
        attempt_ids.append(attempt.id)
    return message.id, attempt_ids


def add_signing(session: AsyncSession, account_id: str, version: int = 2) -> None:
    session.add(WebhookSigning(account_id=account_id, version=version, rotated_at=utcnow()))
