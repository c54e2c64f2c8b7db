"""Counts of jobs, items and webhook messages across the cluster, for the metrics scrape.

Read from the database, not kept per process, so every API process reports the same truth.
Each is one grouped COUNT over an indexed status column.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from alttext.jobstore.models import (
    ITEM_STATUSES,
    JOB_OPEN,
    JOB_STATUSES,
    Job,
    JobItem,
    WebhookMessage,
)


@dataclass(frozen=True)
class JobCounts:
    """Every known status is present (0 when none), so a series never vanishes between scrapes."""

    jobs: dict[str, int]  # per job status
    items: dict[str, int]  # per item status
    queue_depth: int  # pending items of open jobs (queued, running or paused)
    webhook_messages_pending: int  # not yet delivered and not given up


async def _by_status(
    session: AsyncSession, column: InstrumentedAttribute[str], known: tuple[str, ...]
) -> dict[str, int]:
    counts = dict.fromkeys(known, 0)
    rows = await session.execute(select(column, func.count()).group_by(column))
    for status, count in rows:
        counts[str(status)] = int(count)
    return counts


async def job_counts(session: AsyncSession) -> JobCounts:
    queue_depth = await session.scalar(
        select(func.count())
        .select_from(JobItem)
        .join(Job, Job.id == JobItem.job_id)
        .where(JobItem.status == "pending", Job.status.in_(JOB_OPEN))
    )
    pending_messages = await session.scalar(
        select(func.count()).select_from(WebhookMessage).where(WebhookMessage.state == "pending")
    )
    return JobCounts(
        jobs=await _by_status(session, Job.status, JOB_STATUSES),
        items=await _by_status(session, JobItem.status, ITEM_STATUSES),
        queue_depth=int(queue_depth or 0),
        webhook_messages_pending=int(pending_messages or 0),
    )
