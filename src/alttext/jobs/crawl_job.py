"""A source job's crawl, run once by whichever worker takes its message.

The crawl holds a lease on the job (renewed while it runs), so a crawl whose worker died is
started again by the sweep; it stores the images it found as the job's items in one
transaction at the end, so a crawl that is retried never stores half a site twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from datetime import timedelta

from sqlalchemy import or_, update

from alttext.db import transaction, utcnow
from alttext.jobs.crawl import CrawledImage, CrawlFailed, crawl
from alttext.jobs.service import NewItem, add_items, finish_event
from alttext.jobstore.models import Job
from alttext.process import Services

log = logging.getLogger("alttext.jobs.crawl")


def new_item(image: CrawledImage, overwrite: bool) -> NewItem:
    options: dict[str, object] = {}
    if image.context:
        options["context"] = image.context
    if image.role:
        options["role"] = image.role
    if image.link_target:
        options["link_target"] = image.link_target
    if image.language:
        options["language"] = image.language
    # alt="" marks a decorative image on purpose and is always kept; other alts unless asked.
    keep = image.existing_alt == "" or (image.existing_alt is not None and not overwrite)
    return NewItem(
        image.image_url,
        options,
        page_url=image.page_url,
        existing_alt=image.existing_alt,
        skipped=keep,
    )


async def _take(services: Services, job_id: str) -> Job | None:
    """Lease the crawl if it is not running elsewhere; the job, or None."""
    now = utcnow()
    lease = timedelta(seconds=services.settings.job_lease_s)
    async with transaction(services.sessions) as session:
        taken = await session.execute(
            update(Job)
            .where(
                Job.id == job_id,
                Job.status == "queued",
                or_(
                    Job.crawl_state == "pending",
                    (Job.crawl_state == "running") & (Job.crawl_lease_until < now),
                ),
            )
            .values(crawl_state="running", crawl_lease_until=now + lease)
        )
        if not taken.rowcount:  # type: ignore[attr-defined]
            return None
        return await session.get(Job, job_id)


@contextlib.asynccontextmanager
async def _lease_kept(services: Services, job_id: str) -> AsyncIterator[asyncio.Event]:
    """Renew the crawl's lease; the event is set when the job was cancelled meanwhile."""
    lease = services.settings.job_lease_s
    cancelled = asyncio.Event()

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            with contextlib.suppress(Exception):
                async with transaction(services.sessions) as session:
                    kept = await session.execute(
                        update(Job)
                        .where(Job.id == job_id, Job.status == "queued")
                        .values(crawl_lease_until=utcnow() + timedelta(seconds=lease))
                    )
                    if not kept.rowcount:  # type: ignore[attr-defined]
                        cancelled.set()
                        return

    task = asyncio.create_task(renew())
    try:
        yield cancelled
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def run_crawl(services: Services, job_id: str) -> bool:
    """Crawl the job's source and store its images; True if this call did the crawl."""
    job = await _take(services, job_id)
    if job is None or job.source_url is None:
        return False
    settings, runtime = services.settings, services.runtime
    async with _lease_kept(services, job_id) as cancelled:
        crawling = asyncio.create_task(
            crawl(
                job.source_url,
                client=runtime.http,
                limits=runtime.fetch_limits,
                max_pages=job.max_pages or settings.crawl_max_pages,
                delay_s=settings.crawl_delay_s,
            )
        )
        stopped = asyncio.create_task(cancelled.wait())
        await asyncio.wait({crawling, stopped}, return_when=asyncio.FIRST_COMPLETED)
        stopped.cancel()
        if cancelled.is_set():
            crawling.cancel()
            with contextlib.suppress(asyncio.CancelledError, CrawlFailed):
                await crawling
            return True
        try:
            report = crawling.result()
        except CrawlFailed as exc:
            await _failed(services, job_id, str(exc))
            return True
    async with transaction(services.sessions) as session:
        fresh = await session.get(Job, job_id, with_for_update=True)
        if fresh is None or fresh.status != "queued" or fresh.crawl_state != "running":
            return True  # cancelled (or taken over) while we crawled
        await add_items(session, fresh, [new_item(i, fresh.overwrite) for i in report.images])
        fresh.crawl_state = "done"
        fresh.crawl_lease_until = None
        fresh.pages_crawled = len(report.pages)
    log.info(
        "crawled",
        extra={"job_id": job_id, "pages": len(report.pages), "images": len(report.images)},
    )
    return True


async def _failed(services: Services, job_id: str, why: str) -> None:
    async with transaction(services.sessions) as session:
        ended = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(
                status="failed",
                crawl_state="failed",
                crawl_lease_until=None,
                error=why[:1000],
                finished_at=utcnow(),
            )
        )
        if ended.rowcount:  # type: ignore[attr-defined]
            job = await session.get(Job, job_id)
            if job is not None:
                await session.refresh(job)
                await finish_event(session, job, "job.failed")
