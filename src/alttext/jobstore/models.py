"""Tables of bulk jobs, their items, and outbound webhook messages and delivery attempts.

A job holds URLs, options and results, never images: an image is fetched when its item runs
and dropped with the request. Item state lives here, with a lease, so that any worker can take
up an item whose worker died; see ``alttext.jobs.runner`` for the life of an item.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from alttext.db import Base, UTCDateTime, utcnow

# queued -> running -> completed | failed; paused (out of credits) <-> running; any -> cancelled
JOB_STATUSES = ("queued", "running", "paused", "completed", "failed", "cancelled")
JOB_OPEN = ("queued", "running", "paused")
ITEM_STATUSES = ("pending", "running", "succeeded", "failed", "skipped", "cancelled")
ITEM_DONE = ("succeeded", "failed", "skipped", "cancelled")
# A crawl (source jobs only): pending -> running -> done | failed.
CRAWL_STATES = ("pending", "running", "done", "failed")
WEBHOOK_EVENTS = ("job.completed", "job.failed", "job.cancelled", "job.paused")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_account_id_id", "account_id", "id"),
        Index("ix_jobs_status", "status"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # job_…
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    key_id: Mapped[str | None] = mapped_column(String(40))  # the key that created it (metering)
    status: Mapped[str] = mapped_column(String(12), default="queued")
    # Options shared by every item (JSON object: context, role, language, max_length, ...).
    defaults: Mapped[str] = mapped_column(Text, default="{}")
    overwrite: Mapped[bool] = mapped_column(Boolean, default=False)
    source_url: Mapped[str | None] = mapped_column(String(2048))
    max_pages: Mapped[int | None] = mapped_column(Integer)
    crawl_state: Mapped[str | None] = mapped_column(String(10))
    crawl_lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    pages_crawled: Mapped[int] = mapped_column(Integer, default=0)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    error: Mapped[str | None] = mapped_column(String(1000))  # why it failed, for people
    total_items: Mapped[int] = mapped_column(Integer, default=0)
    credits_spent: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class JobItem(Base):
    __tablename__ = "job_items"
    __table_args__ = (
        Index("ix_job_items_job_id_seq", "job_id", "seq", unique=True),
        Index("ix_job_items_job_id_status", "job_id", "status"),
        # The claim: an account's next pending item in job and item order, read off the index.
        Index("ix_job_items_account_id_status_job_id_seq", "account_id", "status", "job_id", "seq"),
        Index("ix_job_items_status_lease_until", "status", "lease_until"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # item_…
    job_id: Mapped[str] = mapped_column(String(40), ForeignKey("jobs.id", ondelete="CASCADE"))
    # Denormalised from the job: the per-account cap counts running items without a join.
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    seq: Mapped[int] = mapped_column(Integer)  # order within the job: results come in this order
    client_id: Mapped[str | None] = mapped_column(String(100))  # the caller's own id, if any
    image_url: Mapped[str] = mapped_column(String(2048))
    page_url: Mapped[str | None] = mapped_column(String(2048))  # crawled: where the image is
    # Per-item options over the job's defaults (JSON object: context, role, language, ...).
    options: Mapped[str] = mapped_column(Text, default="{}")
    existing_alt: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    request_id: Mapped[str | None] = mapped_column(String(40))  # the current or last attempt's
    alt_text: Mapped[str | None] = mapped_column(Text)
    decorative: Mapped[bool | None] = mapped_column(Boolean)
    role: Mapped[str | None] = mapped_column(String(12))
    needs_review: Mapped[bool | None] = mapped_column(Boolean)
    review_reasons: Mapped[str | None] = mapped_column(Text)  # JSON list
    problem: Mapped[str | None] = mapped_column(Text)  # JSON problem document
    model: Mapped[str | None] = mapped_column(String(200))
    credits: Mapped[int] = mapped_column(Integer, default=0)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookSigning(Base):
    """Which signing secret an account's webhooks use now: a version, never the secret.

    The secret is derived from ``ALTTEXT_SECRET_KEY``, the account id and the version (HMAC), so
    nothing readable is stored; rotating bumps the version, and the previous secret signs too
    for a grace period so receivers can switch without losing a delivery.
    """

    __tablename__ = "webhook_signing"

    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    version: Mapped[int] = mapped_column(Integer, default=1)
    rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookMessage(Base):
    """One event to deliver to one URL, retried until delivered or the retry window ends."""

    __tablename__ = "webhook_messages"
    __table_args__ = (
        Index("ix_webhook_messages_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # msg_… (the webhook-id)
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE"), index=True
    )
    job_id: Mapped[str | None] = mapped_column(
        String(40), ForeignKey("jobs.id", ondelete="SET NULL"), index=True
    )
    event: Mapped[str] = mapped_column(String(30))
    url: Mapped[str] = mapped_column(String(2048))
    payload: Mapped[str] = mapped_column(Text)  # the JSON body: job metadata, never images
    state: Mapped[str] = mapped_column(String(10), default="pending")  # pending|delivered|failed
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)


class WebhookAttempt(Base):
    """One delivery attempt: what happened and how long it took, never the body."""

    __tablename__ = "webhook_attempts"
    __table_args__ = (Index("ix_webhook_attempts_account_id_id", "account_id", "id"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # wha_…
    message_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("webhook_messages.id", ondelete="CASCADE"), index=True
    )
    account_id: Mapped[str] = mapped_column(
        String(40), ForeignKey("accounts.id", ondelete="CASCADE")
    )
    event: Mapped[str] = mapped_column(String(30))
    url: Mapped[str] = mapped_column(String(2048))
    attempt: Mapped[int] = mapped_column(Integer)
    # delivered | http_error | timeout | network_error | refused (SSRF check)
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[int | None] = mapped_column(Integer)
    latency_ms: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
