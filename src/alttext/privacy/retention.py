"""The retention policy: how long each kind of record is kept, and ``purge`` that applies it.

Every period lives here (plus ``ALTTEXT_RETENTION_DAYS`` for usage detail and
``ALTTEXT_JOB_RETENTION_DAYS`` for bulk jobs and webhook deliveries) so that the privacy page,
the docs and the code cannot disagree. ``purge`` runs daily in every API process and from
``alttext purge``; each step is a short transaction that is idempotent and safe to run in
several processes at once (a row is counted only by the transaction whose DELETE removed it).
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.logins import WINDOW as LOGIN_WINDOW
from alttext.accounts.models import Account, LoginFailure, WebSession
from alttext.accounts.sessions import IDLE_TIMEOUT
from alttext.billing.models import CreditReservation, StripeEvent
from alttext.config import Settings
from alttext.db import transaction, upsert, utcnow
from alttext.idempotency import KEEP_FOR as IDEMPOTENCY_KEEP
from alttext.idempotency import purge_expired
from alttext.ids import new_id
from alttext.jobstore.models import (
    JOB_OPEN,
    JOB_STATUSES,
    Job,
    JobItem,
    WebhookAttempt,
    WebhookMessage,
)
from alttext.privacy.models import AuditEvent, EmailToken, TrialMark, UsageRollup
from alttext.privacy.trial import TRIAL_MARK_KEEP
from alttext.scheduler import PeriodicTask
from alttext.usage.models import UsageEvent

log = logging.getLogger("alttext.privacy.retention")

UNVERIFIED_SIGNUP_TTL = timedelta(hours=48)
EMAIL_TOKEN_KEEP = timedelta(days=7)  # after the token was used or expired
STRIPE_INBOX_KEEP = timedelta(days=30)  # processed or ignored; pending/unmatched wait for a human
RESERVATION_KEEP = timedelta(days=7)  # settled or released; the ledger keeps the money trail
# 3 years (and a leap day): the proof of how each privacy request was handled.
AUDIT_KEEP = timedelta(days=3 * 365 + 1)
BATCH = 500  # rows per transaction: keeps each write short whatever the backlog
# Jobs and webhook messages are purged only once they have ended; open ones are kept.
JOB_FINISHED = tuple(s for s in JOB_STATUSES if s not in JOB_OPEN)  # completed, failed, cancelled
MESSAGE_FINISHED = ("delivered", "failed")  # pending ones are still being retried
# ALTTEXT_JOB_RETENTION_DAYS's default, for callers that do not pass the setting.
DEFAULT_JOB_RETENTION_DAYS: int = Settings.model_fields["job_retention_days"].default

# One step of a purge: (rows removed in this transaction, whether more may remain).
Step = Callable[..., Awaitable[tuple[int, bool]]]


def _hours(period: timedelta) -> int:
    return int(period.total_seconds() // 3600)


@dataclass(frozen=True)
class RetentionRule:
    """One line of the published retention schedule."""

    data: str
    kept: str


def retention_schedule(
    retention_days: int, job_retention_days: int = DEFAULT_JOB_RETENTION_DAYS
) -> list[RetentionRule]:
    """The schedule as published on /privacy and in docs/privacy.md.

    ``retention_days`` and ``job_retention_days`` are the settings ``ALTTEXT_RETENTION_DAYS``
    and ``ALTTEXT_JOB_RETENTION_DAYS``.
    """
    return [
        RetentionRule(
            "Images",
            "Never stored: held in memory for the request (or, in a bulk job, while its item "
            "runs), then dropped.",
        ),
        RetentionRule(
            "Usage detail (one row per request)",
            f"{retention_days} days, then added to anonymous monthly totals per model and deleted.",
        ),
        RetentionRule(
            "Bulk jobs and their results (image and page URLs, alt text)",
            f"{job_retention_days} days after the job finished (completed, failed or "
            "cancelled), then the job and all its items are deleted; a job still open "
            "(queued, running or paused) is kept while it is open.",
        ),
        RetentionRule(
            "Webhook deliveries (the messages sent about jobs, and each delivery attempt)",
            f"{job_retention_days} days after the message was delivered or given up on; "
            "one still being retried is kept until then.",
        ),
        RetentionRule(
            "Anonymous monthly usage totals", "Kept; they name no account, key or person."
        ),
        RetentionRule(
            "Idempotency records (a stored response for retries)",
            f"{_hours(IDEMPOTENCY_KEEP)} hours.",
        ),
        RetentionRule(
            "Credit reservations",
            f"{RESERVATION_KEEP.days} days after they are settled or released.",
        ),
        RetentionRule(
            "Unconfirmed sign-ups",
            f"{_hours(UNVERIFIED_SIGNUP_TTL)} hours, then the account "
            "and everything attached to it is deleted.",
        ),
        RetentionRule(
            "E-mail confirmation links",
            f"{EMAIL_TOKEN_KEEP.days} days after they are used or expire.",
        ),
        RetentionRule(
            "Payment notifications from Stripe",
            f"{STRIPE_INBOX_KEEP.days} days after they are processed; ones that need a "
            "person's attention are kept until resolved.",
        ),
        RetentionRule(
            "Dashboard sessions",
            "Until you log out; ended after "
            f"{IDLE_TIMEOUT.days} days without use and 30 days after login at the latest.",
        ),
        RetentionRule(
            "Failed logins (keyed hashes, no address)",
            f"{int(LOGIN_WINDOW.total_seconds() // 60)} minutes.",
        ),
        RetentionRule(
            "Trial credits given (a keyed hash of the address)",
            f"{TRIAL_MARK_KEEP.days // 365} years, also after an erasure, so the trial goes "
            "once to each address.",
        ),
        RetentionRule(
            "Audit trail of privacy requests",
            "3 years: the proof of how each request was handled.",
        ),
        RetentionRule(
            "Account, API key metadata, consents, credit ledger, webhook signing version",
            "While the account exists. On erasure, personal data is deleted and only the "
            "anonymised accounting records the law requires are kept.",
        ),
    ]


@dataclass
class PurgeReport:
    usage_events_rolled_up: int = 0
    unverified_accounts: int = 0
    email_tokens: int = 0
    stripe_events: int = 0
    idempotency_records: int = 0
    credit_reservations: int = 0
    audit_events: int = 0
    web_sessions: int = 0
    login_failures: int = 0
    trial_marks: int = 0
    jobs: int = 0
    job_items: int = 0
    webhook_messages: int = 0
    webhook_attempts: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)

    @property
    def total(self) -> int:
        return sum(self.as_dict().values())


def _claim(query: Select[Any]) -> Select[Any]:
    """A batch of rows this transaction alone will handle: on PostgreSQL, rows another purge
    has locked are skipped (no waiting, no deadlock); SQLite runs one writer at a time."""
    return query.limit(BATCH).with_for_update(skip_locked=True)


async def _add_to_rollup(session: AsyncSession, month: str, model: str, t: dict[str, Any]) -> None:
    """Insert the group's totals or add them to the existing row, in one statement, so two
    processes rolling the same month never collide on the unique (month, model)."""
    stmt = upsert(session, UsageRollup).values(month=month, model=model, **t)
    excluded = stmt.excluded
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[UsageRollup.month, UsageRollup.model],
            set_={name: getattr(UsageRollup, name) + excluded[name] for name in t},
        )
    )


async def _roll_up_usage_batch(session: AsyncSession, cutoff: datetime) -> tuple[int, bool]:
    """Move one batch of old usage events into the monthly totals.

    Returns (events rolled up by this transaction, whether more may remain). The totals are
    summed from what our DELETE ... RETURNING removed, so an event removed concurrently by
    another process is counted by that process only, and a crash rolls back both halves.
    """
    ids = list(
        (
            await session.execute(
                _claim(select(UsageEvent.id).where(UsageEvent.created_at < cutoff))
            )
        ).scalars()
    )
    if not ids:
        return 0, False
    rows = await session.execute(
        delete(UsageEvent)
        .where(UsageEvent.id.in_(ids), UsageEvent.created_at < cutoff)
        .returning(
            UsageEvent.created_at,
            UsageEvent.model,
            UsageEvent.status,
            UsageEvent.credits,
            UsageEvent.input_tokens,
            UsageEvent.output_tokens,
            UsageEvent.upstream_cost_usd,
        )
    )
    groups: dict[tuple[str, str], dict[str, Any]] = defaultdict(
        lambda: dict.fromkeys(
            (
                "requests",
                "succeeded",
                "failed",
                "credits",
                "input_tokens",
                "output_tokens",
                "upstream_cost_usd",
            ),
            0,
        )
    )
    count = 0
    for created_at, model, status, credits, tin, tout, cost in rows:
        count += 1
        t = groups[(created_at.astimezone(UTC).strftime("%Y-%m"), model or "")]
        ok = status in ("succeeded", "decorative", "cached")  # free answers are no failures
        t["requests"] += 1
        t["succeeded"] += int(ok)
        t["failed"] += int(not ok)
        t["credits"] += credits or 0
        t["input_tokens"] += tin or 0
        t["output_tokens"] += tout or 0
        t["upstream_cost_usd"] += cost or 0.0
    for (month, model), totals in sorted(groups.items()):
        totals["upstream_cost_usd"] = round(totals["upstream_cost_usd"], 8)
        await _add_to_rollup(session, month, model, totals)
    return count, True


async def _expire_unverified_batch(
    session: AsyncSession, cutoff: datetime, now: datetime
) -> tuple[int, bool]:
    ids = list(
        (
            await session.execute(
                _claim(
                    select(Account.id).where(
                        Account.status == "unverified", Account.created_at < cutoff
                    )
                )
            )
        ).scalars()
    )
    if not ids:
        return 0, False
    # Re-checked in the DELETE: an account confirmed meanwhile is kept; consents, keys and
    # tokens go with it (ON DELETE CASCADE).
    deleted = (
        await session.execute(
            delete(Account)
            .where(
                Account.id.in_(ids),
                Account.status == "unverified",
                Account.created_at < cutoff,
            )
            .returning(Account.id)
        )
    ).scalars()
    count = 0
    for account_id in deleted:
        count += 1
        session.add(
            AuditEvent(
                id=new_id("aud"),
                account_id=account_id,
                actor="system",
                action="signup_expired",
                detail=json.dumps(
                    {"reason": "unverified", "after_hours": _hours(UNVERIFIED_SIGNUP_TTL)}
                ),
                created_at=now,  # the purge's clock, so a moved clock stays consistent
            )
        )
    return count, True


async def _delete_batch(
    session: AsyncSession, model: Any, pk: Any, *where: Any
) -> tuple[int, bool]:
    ids = list((await session.execute(_claim(select(pk).where(*where)))).scalars())
    if not ids:
        return 0, False
    result = await session.execute(delete(model).where(pk.in_(ids), *where))
    return int(result.rowcount), True  # type: ignore[attr-defined]


def _ended_before(
    state: Any, ended: tuple[str, ...], finished_at: Any, created_at: Any, cutoff: datetime
) -> ColumnElement[bool]:
    """Rows in a final state that ended before ``cutoff``. A final row without a finish time
    (which the writers never leave, but a crash between two writes could) counts from when it
    was created, so that nothing in a final state is kept for ever."""
    return and_(
        state.in_(ended),
        or_(finished_at < cutoff, and_(finished_at.is_(None), created_at < cutoff)),
    )


async def _drain(sessions: async_sessionmaker[AsyncSession], step: Step, *args: Any) -> int:
    """Run ``step`` in its own short transaction until nothing is left."""
    total = 0
    while True:
        async with transaction(sessions) as session:
            count, more = await step(session, *args)
        total += count
        if not more:
            return total


async def _idempotency_step(session: AsyncSession, now: datetime) -> tuple[int, bool]:
    return await purge_expired(session, now=now), False


async def purge(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    now: datetime | None = None,
) -> PurgeReport:
    """Apply the retention schedule once; returns how many rows each step removed."""
    now = now or utcnow()
    report = PurgeReport()
    report.usage_events_rolled_up = await _drain(
        sessions, _roll_up_usage_batch, now - timedelta(days=settings.retention_days)
    )
    report.unverified_accounts = await _drain(
        sessions, _expire_unverified_batch, now - UNVERIFIED_SIGNUP_TTL, now
    )
    token_cutoff = now - EMAIL_TOKEN_KEEP
    report.email_tokens = await _drain(
        sessions,
        _delete_batch,
        EmailToken,
        EmailToken.id,
        or_(EmailToken.expires_at < token_cutoff, EmailToken.used_at < token_cutoff),
    )
    report.stripe_events = await _drain(
        sessions,
        _delete_batch,
        StripeEvent,
        StripeEvent.id,
        StripeEvent.state.in_(("processed", "ignored")),
        StripeEvent.received_at < now - STRIPE_INBOX_KEEP,
    )
    report.idempotency_records = await _drain(sessions, _idempotency_step, now)
    report.credit_reservations = await _drain(
        sessions,
        _delete_batch,
        CreditReservation,
        CreditReservation.id,
        CreditReservation.state.in_(("settled", "released")),
        CreditReservation.created_at < now - RESERVATION_KEEP,
    )
    report.audit_events = await _drain(
        sessions, _delete_batch, AuditEvent, AuditEvent.id, AuditEvent.created_at < now - AUDIT_KEEP
    )
    report.web_sessions = await _drain(
        sessions,
        _delete_batch,
        WebSession,
        WebSession.id,
        or_(WebSession.expires_at <= now, WebSession.last_seen_at <= now - IDLE_TIMEOUT),
    )
    report.login_failures = await _drain(
        sessions,
        _delete_batch,
        LoginFailure,
        LoginFailure.id,
        LoginFailure.created_at <= now - LOGIN_WINDOW,
    )
    report.trial_marks = await _drain(
        sessions,
        _delete_batch,
        TrialMark,
        TrialMark.email_hash,
        TrialMark.created_at < now - TRIAL_MARK_KEEP,
    )
    job_cutoff = now - timedelta(days=settings.job_retention_days)
    old_job = _ended_before(Job.status, JOB_FINISHED, Job.finished_at, Job.created_at, job_cutoff)
    # A job's items first, in batches: deleting the job would cascade to its items (foreign key
    # ON DELETE CASCADE; SQLite enforces it, db.py turns foreign_keys on), but that would be up
    # to 10,000 items per job in one DELETE. The cascade stays a safety net only.
    report.job_items = await _drain(
        sessions,
        _delete_batch,
        JobItem,
        JobItem.id,
        JobItem.job_id.in_(select(Job.id).where(old_job)),
    )
    # Webhook messages about a deleted job keep their own period (their job_id becomes null).
    report.jobs = await _drain(sessions, _delete_batch, Job, Job.id, old_job)
    old_message = _ended_before(
        WebhookMessage.state,
        MESSAGE_FINISHED,
        WebhookMessage.finished_at,
        WebhookMessage.created_at,
        job_cutoff,
    )
    report.webhook_attempts = await _drain(
        sessions,
        _delete_batch,
        WebhookAttempt,
        WebhookAttempt.id,
        WebhookAttempt.message_id.in_(select(WebhookMessage.id).where(old_message)),
    )
    report.webhook_messages = await _drain(
        sessions, _delete_batch, WebhookMessage, WebhookMessage.id, old_message
    )
    if report.total:
        log.info("retention purge", extra=report.as_dict())
    return report


def periodic_tasks(
    sessions: async_sessionmaker[AsyncSession], settings: Settings
) -> list[PeriodicTask]:
    return [PeriodicTask("retention-purge", 86400.0, lambda: purge(sessions, settings))]


__all__ = [
    "AUDIT_KEEP",
    "DEFAULT_JOB_RETENTION_DAYS",
    "EMAIL_TOKEN_KEEP",
    "JOB_FINISHED",
    "MESSAGE_FINISHED",
    "RESERVATION_KEEP",
    "STRIPE_INBOX_KEEP",
    "UNVERIFIED_SIGNUP_TTL",
    "PurgeReport",
    "RetentionRule",
    "periodic_tasks",
    "purge",
    "retention_schedule",
]
