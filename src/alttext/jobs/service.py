"""Bulk jobs as the account sees them: create, read, list, results, cancel.

Creating a job writes the job and its items in one transaction and returns; the work is done
by ``alttext.jobs.runner`` on the queue. A job holds URLs, options and results, never images.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from pydantic import ValidationError
from sqlalchemy import func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.config import Settings
from alttext.db import iso_utc, transaction, utcnow
from alttext.describe.errors import ImageFetchFailed
from alttext.describe.fetch import check_url, is_forbidden_address, parse_ip_host
from alttext.errors import InvalidRequest, NotFound
from alttext.generation.schemas import AltTextOptions, Problem
from alttext.ids import new_id
from alttext.jobs import webhooks
from alttext.jobs.schemas import (
    JobCounts,
    JobCreate,
    JobItemIn,
    JobOut,
    JobResult,
    JobSourceOut,
)
from alttext.jobstore.models import ITEM_STATUSES, JOB_OPEN, Job, JobItem

INSERT_BATCH = 1000  # rows per INSERT statement: large jobs stay within driver limits


@dataclass(frozen=True)
class NewItem:
    """An item about to be stored: from the request, or found by the crawler."""

    image_url: str
    options: dict[str, Any]
    client_id: str | None = None
    page_url: str | None = None
    existing_alt: str | None = None
    skipped: bool = False


def _field_problem(field: str, message: str) -> InvalidRequest:
    return InvalidRequest(
        "The request has invalid or missing fields.", errors=[{"field": field, "message": message}]
    )


def checked_url(url: str, field: str, settings: Settings, noun: str) -> str:
    """A URL to fetch later: its shape now, and no literal private address (names are checked
    again, after DNS, every time they are fetched)."""
    try:
        url = check_url(url, noun)
    except ImageFetchFailed as exc:
        raise _field_problem(field, exc.detail) from None
    try:
        literal = parse_ip_host(httpx.URL(url).host)
    except ValueError:
        raise _field_problem(field, "the host is not a valid address") from None
    if literal is not None and not settings.allow_private_urls and is_forbidden_address(literal):
        raise _field_problem(field, "a private, local or reserved address is refused")
    return url


def _item_options(item: JobItemIn) -> dict[str, Any]:
    return item.model_dump(exclude_none=True, exclude={"id", "image_url"})


def validate_items(spec: JobCreate, settings: Settings) -> tuple[dict[str, Any], list[NewItem]]:
    """The job's defaults and its items, each item's options checked merged with the defaults
    (so a bad language in item 9,000 is a 422 now, not a failure an hour later)."""
    defaults = spec.defaults.model_dump(exclude_unset=True) if spec.defaults else {}
    items: list[NewItem] = []
    errors: list[dict[str, str | None]] = []
    for index, item in enumerate(spec.items or ()):
        options = _item_options(item)
        try:
            AltTextOptions.model_validate({**defaults, **options})
            url = checked_url(item.image_url, f"items[{index}].image_url", settings, "image")
        except ValidationError as exc:
            for error in exc.errors():
                where = ".".join(str(part) for part in error["loc"])
                errors.append({"field": f"items[{index}].{where}", "message": error["msg"]})
            continue
        except InvalidRequest as exc:
            errors.extend(exc.errors or [])
            continue
        items.append(NewItem(url, options, client_id=item.id))
        if len(errors) >= 20:  # enough to fix the first problems; the rest are likely alike
            break
    if errors:
        raise InvalidRequest("The request has invalid or missing fields.", errors=errors[:20])
    return defaults, items


async def create_job(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    account_id: str,
    key_id: str | None,
    spec: JobCreate,
    keep: Callable[[AsyncSession, JobOut], Awaitable[None]] | None = None,
) -> JobOut:
    """``keep`` runs in the transaction that creates the job, with the job as answered (an
    Idempotency-Key records it there, so a retry after a crash never makes a second job); it
    raises to create nothing."""
    defaults, items = validate_items(spec, settings)
    webhook_url = (
        checked_url(spec.webhook_url, "webhook_url", settings, "webhook")
        if spec.webhook_url
        else None
    )
    source_url = None
    max_pages = None
    if spec.source is not None:
        source_url = checked_url(spec.source.url, "source.url", settings, "page")
        max_pages = min(spec.source.max_pages or settings.crawl_max_pages, settings.crawl_max_pages)
    job = Job(
        id=new_id("job"),
        account_id=account_id,
        key_id=key_id,
        status="queued",
        defaults=json.dumps(defaults),
        overwrite=spec.overwrite,
        source_url=source_url,
        max_pages=max_pages,
        crawl_state="pending" if source_url else None,
        webhook_url=webhook_url,
        total_items=0,
        credits_spent=0,
        pages_crawled=0,
        created_at=utcnow(),
    )
    async with transaction(sessions) as session:
        session.add(job)
        await session.flush()
        await add_items(session, job, items)
        if keep is not None:
            await keep(session, document(job, await counts(session, job.id)))
    return await get_job(sessions, account_id, job.id)


async def add_items(session: AsyncSession, job: Job, items: Sequence[NewItem]) -> None:
    """Store ``items`` after the job's existing ones (``seq`` orders results)."""
    start = job.total_items
    rows = [
        {
            "id": new_id("item"),
            "job_id": job.id,
            "account_id": job.account_id,
            "seq": start + offset,
            "client_id": item.client_id,
            "image_url": item.image_url,
            "page_url": item.page_url,
            "options": json.dumps(item.options),
            "existing_alt": item.existing_alt,
            "status": "skipped" if item.skipped else "pending",
            "attempts": 0,
            "credits": 0,
            "finished_at": utcnow() if item.skipped else None,
        }
        for offset, item in enumerate(items)
    ]
    for first in range(0, len(rows), INSERT_BATCH):
        await session.execute(insert(JobItem), rows[first : first + INSERT_BATCH])
    await session.execute(
        update(Job).where(Job.id == job.id).values(total_items=Job.total_items + len(rows))
    )
    job.total_items = start + len(rows)


async def counts(session: AsyncSession, job_id: str) -> JobCounts:
    rows = await session.execute(
        select(JobItem.status, func.count())
        .where(JobItem.job_id == job_id)
        .group_by(JobItem.status)
    )
    found = {status: int(n) for status, n in rows.all() if status in ITEM_STATUSES}
    return JobCounts(**found)


def _eta(job: Job, tally: JobCounts, now: datetime) -> int | None:
    if job.status != "running" or job.started_at is None:
        return None
    done = tally.succeeded + tally.failed
    remaining = tally.pending + tally.running
    elapsed = (now - job.started_at).total_seconds()
    if done == 0 or elapsed <= 0:
        return None
    return int(remaining * elapsed / done + 0.5)


def document(job: Job, tally: JobCounts, now: datetime | None = None) -> JobOut:
    source = None
    if job.source_url is not None:
        source = JobSourceOut(
            url=job.source_url,
            max_pages=job.max_pages,
            pages_crawled=job.pages_crawled,
            crawl_state=job.crawl_state,
        )
    return JobOut(
        id=job.id,
        status=job.status,
        total=job.total_items,
        counts=tally,
        credits_spent=job.credits_spent,
        eta_s=_eta(job, tally, now or utcnow()),
        source=source,
        overwrite=job.overwrite,
        webhook_url=job.webhook_url,
        error=job.error,
        created_at=iso_utc(job.created_at),
        started_at=iso_utc(job.started_at),
        finished_at=iso_utc(job.finished_at),
    )


async def _owned(session: AsyncSession, account_id: str, job_id: str) -> Job:
    job = await session.get(Job, job_id)
    # Another account's job is "not found", never "forbidden": ids are not confirmed to exist.
    if job is None or job.account_id != account_id:
        raise NotFound("No job with this id in this account.")
    return job


async def get_job(
    sessions: async_sessionmaker[AsyncSession], account_id: str, job_id: str
) -> JobOut:
    async with sessions() as session:
        job = await _owned(session, account_id, job_id)
        return document(job, await counts(session, job.id))


async def list_jobs(
    sessions: async_sessionmaker[AsyncSession],
    account_id: str,
    *,
    limit: int,
    starting_after: str | None,
) -> tuple[list[JobOut], bool]:
    """Newest first, Stripe style: ``starting_after`` is the last id of the previous page."""
    query = select(Job).where(Job.account_id == account_id)
    if starting_after is not None:
        query = query.where(Job.id < starting_after)
    async with sessions() as session:
        jobs = list(
            (await session.execute(query.order_by(Job.id.desc()).limit(limit + 1))).scalars()
        )
        page = jobs[:limit]
        out = [document(job, await counts(session, job.id)) for job in page]
    return out, len(jobs) > limit


def result_of(item: JobItem) -> JobResult:
    problem = Problem(**json.loads(item.problem)) if item.problem else None
    return JobResult(
        item_id=item.id,
        id=item.client_id,
        image_url=item.image_url,
        page_url=item.page_url,
        status=item.status,
        alt_text=item.alt_text,
        decorative=item.decorative,
        role=item.role,
        existing_alt=item.existing_alt,
        needs_review=item.needs_review,
        review_reasons=json.loads(item.review_reasons) if item.review_reasons else [],
        problem=problem,
    )


async def results_page(
    sessions: async_sessionmaker[AsyncSession],
    account_id: str,
    job_id: str,
    *,
    limit: int,
    starting_after: str | None,
) -> tuple[list[JobResult], bool]:
    """In item order (``seq``); ``starting_after`` is an item id of this job."""
    async with sessions() as session:
        await _owned(session, account_id, job_id)
        after = -1
        if starting_after is not None:
            found = await session.scalar(
                select(JobItem.seq).where(JobItem.id == starting_after, JobItem.job_id == job_id)
            )
            if found is None:
                raise _field_problem("starting_after", "not an item of this job")
            after = found
        items = list(
            (
                await session.execute(
                    select(JobItem)
                    .where(JobItem.job_id == job_id, JobItem.seq > after)
                    .order_by(JobItem.seq)
                    .limit(limit + 1)
                )
            ).scalars()
        )
    return [result_of(item) for item in items[:limit]], len(items) > limit


async def all_results(
    sessions: async_sessionmaker[AsyncSession], account_id: str, job_id: str, *, page: int = 500
) -> AsyncIterator[JobResult]:
    """Every result in order, a page per short read (a CSV download of 10,000 rows never holds
    a transaction or the whole job in memory)."""
    cursor: str | None = None
    while True:
        rows, more = await results_page(
            sessions, account_id, job_id, limit=page, starting_after=cursor
        )
        for row in rows:
            yield row
        if not more or not rows:
            return
        cursor = rows[-1].item_id


async def finish_event(session: AsyncSession, job: Job, event: str) -> None:
    """Queue the job's webhook for ``event`` (in the caller's transaction), if it has one."""
    if job.webhook_url is None:
        return
    payload = document(job, await counts(session, job.id)).model_dump(mode="json")
    await webhooks.enqueue_event(
        session,
        account_id=job.account_id,
        job_id=job.id,
        url=job.webhook_url,
        event=event,
        job=payload,
    )


async def cancel_job(
    sessions: async_sessionmaker[AsyncSession], account_id: str, job_id: str
) -> JobOut:
    """Cancelled at once: pending items are cancelled, running ones finish (and are charged if
    they succeed). A job that already ended is returned unchanged."""
    async with transaction(sessions) as session:
        job = await _owned(session, account_id, job_id)
        now = utcnow()
        changed = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(JOB_OPEN))
            .values(status="cancelled", finished_at=now)
        )
        if changed.rowcount:  # type: ignore[attr-defined]
            await session.execute(
                update(JobItem)
                .where(JobItem.job_id == job_id, JobItem.status == "pending")
                .values(status="cancelled", finished_at=now)
            )
            await session.refresh(job)
            await finish_event(session, job, "job.cancelled")
    return await get_job(sessions, account_id, job_id)
