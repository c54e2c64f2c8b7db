"""The jobs sweep: the periodic pass that makes the database's state true again after crashes.

Queue messages only wake work up, so whatever a lost message or a dead worker left behind is
found here, every ``ALTTEXT_JOB_SWEEP_S`` seconds, once per cluster:

* a running item whose lease expired goes back to pending, and the credit its dead attempt
  reserved is released in the same transaction (the attempt can no longer settle it: its
  result would not be kept, see ``alttext.jobs.runner``);
* a crawl never started, or whose worker died, is sent again;
* a paused job whose account has credits again resumes;
* every account with claimable items gets its drivers woken;
* an open job with nothing left to do is finished (a crash between its last item and the end).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update

from alttext.accounts.models import Account
from alttext.db import transaction, utcnow
from alttext.jobs.runner import finish_if_done, release_dead_attempt
from alttext.jobstore.models import Job, JobItem
from alttext.process import Services

BATCH = 200


@dataclass
class Kicks:
    """What the sweep wants woken: crawls by job id, drivers by account id."""

    crawls: list[str] = field(default_factory=list)
    accounts: list[str] = field(default_factory=list)


async def expire_leases(services: Services) -> int:
    now = utcnow()
    async with services.sessions() as session:
        rows = (
            await session.execute(
                select(JobItem.id, JobItem.request_id)
                .where(JobItem.status == "running", JobItem.lease_until < now)
                .limit(BATCH)
            )
        ).all()
    taken = 0
    for item_id, request_id in rows:
        async with transaction(services.sessions) as session:
            back = await session.execute(
                update(JobItem)
                .where(
                    JobItem.id == item_id,
                    JobItem.request_id == request_id,
                    JobItem.status == "running",
                    JobItem.lease_until < now,
                )
                .values(status="pending", lease_until=None)
            )
            if back.rowcount:  # type: ignore[attr-defined]
                await release_dead_attempt(session, request_id)
                taken += 1
    return taken


async def resume_paused(services: Services) -> list[str]:
    """Paused jobs of accounts with credits again: running. Returns their account ids."""
    async with transaction(services.sessions) as session:
        rows = (
            await session.execute(
                select(Job.id, Job.account_id)
                .join(Account, Account.id == Job.account_id)
                .where(Job.status == "paused", Account.credits_balance > 0)
                .limit(BATCH)
            )
        ).all()
        for job_id, _account in rows:
            await session.execute(
                update(Job).where(Job.id == job_id, Job.status == "paused").values(status="running")
            )
    return list({account for _job, account in rows})


async def find_work(services: Services) -> Kicks:
    now = utcnow()
    kicks = Kicks()
    async with services.sessions() as session:
        kicks.crawls = list(
            (
                await session.execute(
                    select(Job.id).where(
                        Job.status == "queued",
                        or_(
                            Job.crawl_state == "pending",
                            (Job.crawl_state == "running") & (Job.crawl_lease_until < now),
                        ),
                    )
                )
            ).scalars()
        )
        # Accounts with an open job that has pending items; read from the few open jobs, not
        # by scanning every pending item of the deployment each sweep.
        pending = (
            select(JobItem.id).where(JobItem.job_id == Job.id, JobItem.status == "pending").exists()
        )
        kicks.accounts = list(
            (
                await session.execute(
                    select(Job.account_id)
                    .where(Job.status.in_(("queued", "running")), pending)
                    .distinct()
                    .limit(10_000)
                )
            ).scalars()
        )
    return kicks


async def finish_idle(services: Services) -> int:
    """Open jobs with no pending or running item and no crawl to wait for."""
    open_items = (
        select(func.count())
        .select_from(JobItem)
        .where(JobItem.job_id == Job.id, JobItem.status.in_(("pending", "running")))
        .scalar_subquery()
    )
    async with services.sessions() as session:
        ids = list(
            (
                await session.execute(
                    select(Job.id)
                    .where(
                        Job.status.in_(("queued", "running")),
                        or_(Job.crawl_state.is_(None), Job.crawl_state.in_(("done", "failed"))),
                        open_items == 0,
                    )
                    .limit(BATCH)
                )
            ).scalars()
        )
    finished = 0
    for job_id in ids:
        finished += int(await finish_if_done(services, job_id))
    return finished


async def sweep(
    services: Services,
    wake_crawl: Callable[[str], Awaitable[None]],
    wake_account: Callable[[str], Awaitable[None]],
) -> Kicks:
    await expire_leases(services)
    await resume_paused(services)
    await finish_idle(services)
    kicks = await find_work(services)
    for job_id in kicks.crawls:
        await wake_crawl(job_id)
    for account_id in kicks.accounts:
        await wake_account(account_id)
    return kicks
