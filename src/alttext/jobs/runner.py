"""Running job items: claim one with a lease, generate, record the result — then the next.

A *driver* works for one account: it claims the account's next pending item, runs it through
the same ``generate`` as the API, and repeats until nothing is claimable. Several drivers run
per account (the queue wakes them), but a claim succeeds only while fewer than
``ALTTEXT_JOB_CONCURRENCY_PER_ACCOUNT`` of the account's items hold a live lease, so the cap
holds across every worker of the cluster. The claim locks the account's row (PostgreSQL) or
runs as SQLite's single writer, so two claims never both see room for one.

Money: each attempt has its own request id and reservation. Its result is written in the same
transaction that settles its credit, and only if the attempt still owns the item (same request
id, still running); the charge itself is booked in the ledger under the item's own reference
(``usage:item:<item id>``, the attempt's hold moved onto it), which the ledger accepts once —
so an item is charged at most once even when a lease expired under a slow worker and another
attempt ran. A dead attempt's reservation is released by the sweep when it takes the item back
(``alttext.jobs.sweep``).

Interactive requests are not starved: job items skip the per-account slots of API calls, are
capped per account and per model, and in a scaled-out deployment run on workers, not in API
processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import and_, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from alttext.accounts.models import Account
from alttext.accounts.service import Principal
from alttext.billing import credits, ledger
from alttext.billing.models import CreditReservation
from alttext.config import Settings
from alttext.db import in_transaction, transaction, utcnow
from alttext.describe.errors import AppError, UpstreamUnavailable
from alttext.describe.types import Description
from alttext.errors import (
    INTERNAL_DETAIL,
    InsufficientCredits,
    InternalError,
    InvalidRequest,
    problem_fields,
)
from alttext.generation.schemas import AltTextRequest
from alttext.generation.service import Superseded, generate
from alttext.ids import new_id
from alttext.jobs.service import finish_event
from alttext.jobstore.models import Job, JobItem
from alttext.process import Services

log = logging.getLogger("alttext.jobs")

MODEL_SLOT_WAIT_S = 0.2  # between tries for a model's job slot


@dataclass(frozen=True)
class Claim:
    item_id: str
    job_id: str
    account_id: str
    key_id: str | None
    request_id: str
    image_url: str
    options: dict[str, Any]


async def _lock_account(session: AsyncSession, account_id: str) -> bool:
    """Claims of one account take turns on its row. FOR NO KEY UPDATE, not FOR UPDATE: the
    ledger inserts of items settling meanwhile hold the row's KEY SHARE (their foreign key),
    which FOR UPDATE would wait for, and on PostgreSQL that wait closed deadlock cycles with
    the settlements; an erasure's FOR UPDATE still waits for a claim, and a claim for it."""
    found = await session.scalar(
        select(Account.id).where(Account.id == account_id).with_for_update(key_share=True)
    )
    return found is not None


async def claim_next(services: Services, account_id: str) -> Claim | None:
    """Lease the account's next pending item of an open job, or None when there is none or the
    account is at its cap (oldest job first, items in order). Run again should PostgreSQL
    abort it to break a deadlock."""
    return await in_transaction(
        services.sessions, lambda session: _claim(services.settings, session, account_id)
    )


async def _claim(settings: Settings, session: AsyncSession, account_id: str) -> Claim | None:
    now = utcnow()
    if not await _lock_account(session, account_id):
        return None
    running = await session.scalar(
        select(func.count())
        .select_from(JobItem)
        .where(
            JobItem.account_id == account_id,
            JobItem.status == "running",
            JobItem.lease_until > now,
        )
    )
    if int(running or 0) >= settings.job_concurrency_per_account:
        return None
    row = (
        await session.execute(
            select(JobItem.id, JobItem.job_id, JobItem.image_url, JobItem.options, Job)
            .join(Job, Job.id == JobItem.job_id)
            .where(
                JobItem.account_id == account_id,
                JobItem.status == "pending",
                Job.status.in_(("queued", "running")),
            )
            .order_by(JobItem.job_id, JobItem.seq)
            .limit(1)
        )
    ).one_or_none()
    if row is None:
        return None
    item_id, job_id, image_url, options, job = row
    request_id = new_id("req")
    await session.execute(
        update(JobItem)
        .where(JobItem.id == item_id)
        .values(
            status="running",
            attempts=JobItem.attempts + 1,
            lease_until=now + timedelta(seconds=settings.job_lease_s),
            request_id=request_id,
        )
    )
    if job.status == "queued":
        await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status == "queued")
            .values(status="running", started_at=now)
        )
    merged = {**json.loads(job.defaults), **json.loads(options)}
    return Claim(item_id, job_id, account_id, job.key_id, request_id, image_url, merged)


async def _principal(services: Services, claim: Claim) -> Principal | None:
    async with services.sessions() as session:
        account = await session.get(Account, claim.account_id)
    if account is None:
        return None
    return Principal(
        account_id=account.id,
        key_id=claim.key_id or "job",
        account_status=account.status,
        rate_limit_per_minute=account.rate_limit_per_minute,
        history_opt_in=account.history_opt_in,
        restricted=account.restricted_at is not None,
    )


def _owned_by(claim: Claim) -> Any:
    return and_(
        JobItem.id == claim.item_id,
        JobItem.request_id == claim.request_id,
        JobItem.status == "running",
    )


async def _holds(session: AsyncSession, request_id: str) -> bool:
    """Whether the attempt's reservation still holds its credit, locked until the commit (the
    sweep cannot release it meanwhile). Locked after the item, as the sweep does."""
    state = await session.scalar(
        select(CreditReservation.state).where(CreditReservation.id == request_id).with_for_update()
    )
    return state == "held"


def keeper(claim: Claim) -> Any:
    """The result writer run inside the settling transaction (see ``generate``'s ``keep``).

    Two guards, so an item is charged at most once: the item is written only while this
    attempt still owns it (same request id, still running; the row is locked first), and its
    charge is booked in the ledger under the item's own reference (``ledger.charge_item``),
    which exists once. Either failing returns False having written nothing: ``generate`` then
    releases the attempt's credit in the same transaction."""

    async def keep(session: AsyncSession, d: Description, charged: int) -> bool:
        owned = await session.scalar(
            select(JobItem.id).where(_owned_by(claim)).with_for_update(key_share=True)
        )
        if owned is None:
            return False
        if charged:
            # Locks in the order every settling transaction takes them: item, job, reservation,
            # then the account's row (the ledger entries' foreign key). Taking the account's
            # before the job's can deadlock PostgreSQL against another item's settlement holding
            # the job and releasing a credit (which updates the account's balance).
            await session.execute(
                select(Job.id).where(Job.id == claim.job_id).with_for_update(key_share=True)
            )
            if not await _holds(session, claim.request_id):
                # The reservation expired and was given back before this settled: the result
                # is kept, the customer keeps the credit (``settle`` finds it gone).
                charged = 0
        if charged:
            try:
                await ledger.charge_item(
                    session,
                    account_id=claim.account_id,
                    request_id=claim.request_id,
                    item_id=claim.item_id,
                    credits=charged,
                )
            except ledger.DuplicateEntry:
                log.warning(
                    "job item already charged; attempt not kept",
                    extra={"job_id": claim.job_id, "item": claim.item_id},
                )
                return False
        await session.execute(
            update(JobItem)
            .where(JobItem.id == claim.item_id)
            .values(
                status="succeeded",
                alt_text=d.alt_text,
                decorative=d.decorative,
                role=d.role,
                needs_review=d.needs_review,
                review_reasons=json.dumps(list(d.review_reasons)),
                model=d.model,
                credits=charged,
                lease_until=None,
                finished_at=utcnow(),
            )
        )
        if charged:
            await session.execute(
                update(Job)
                .where(Job.id == claim.job_id)
                .values(credits_spent=Job.credits_spent + charged)
            )
        return True

    return keep


async def _fail(services: Services, claim: Claim, problem: dict[str, Any]) -> None:
    async with transaction(services.sessions) as session:
        await session.execute(
            update(JobItem)
            .where(_owned_by(claim))
            .values(
                status="failed",
                problem=json.dumps(problem),
                lease_until=None,
                finished_at=utcnow(),
            )
        )


async def give_back(services: Services, claim: Claim) -> None:
    """The attempt stops without a result (shutdown, out of credits): pending again at once."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(JobItem).where(_owned_by(claim)).values(status="pending", lease_until=None)
        )


async def pause(services: Services, claim: Claim) -> None:
    """Out of credits: the item waits and the job pauses (the sweep resumes it on credit)."""
    async with transaction(services.sessions) as session:
        await session.execute(
            update(JobItem).where(_owned_by(claim)).values(status="pending", lease_until=None)
        )
        paused = await session.execute(
            update(Job)
            .where(Job.id == claim.job_id, Job.status.in_(("queued", "running")))
            .values(status="paused")
        )
        if paused.rowcount:  # type: ignore[attr-defined]
            job = await session.get(Job, claim.job_id)
            if job is not None:
                await session.refresh(job)
                await finish_event(session, job, "job.paused")


@contextlib.asynccontextmanager
async def _lease_kept(services: Services, claim: Claim) -> AsyncIterator[None]:
    """Renew the lease while the attempt runs, so only a dead worker's lease expires."""
    lease = services.settings.job_lease_s

    async def renew() -> None:
        while True:
            await asyncio.sleep(lease / 3)
            with contextlib.suppress(Exception):  # a missed renewal is retried; the lease is 3x
                async with transaction(services.sessions) as session:
                    await session.execute(
                        update(JobItem)
                        .where(_owned_by(claim))
                        .values(lease_until=utcnow() + timedelta(seconds=lease))
                    )

    task = asyncio.create_task(renew())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@contextlib.asynccontextmanager
async def _model_slot(services: Services, model: str) -> AsyncIterator[None]:
    """At most ``ALTTEXT_JOB_CONCURRENCY_PER_MODEL`` job items per model at once (cluster-wide
    with Redis), so bulk work leaves the provider's rate limits to interactive calls too."""
    name = f"job-model:{model}"
    limit = services.settings.job_concurrency_per_model
    # Polled: the slot may be freed by another process, so there is nothing local to wait on.
    while (token := await services.limiter.acquire(name, limit)) is None:  # noqa: ASYNC110
        await asyncio.sleep(MODEL_SLOT_WAIT_S)
    try:
        yield
    finally:
        await asyncio.shield(services.limiter.release(name, token))


def _problem(exc: AppError, request_id: str) -> dict[str, Any]:
    return problem_fields(exc, request_id)


async def run_item(services: Services, claim: Claim) -> str:
    """One attempt; returns what happened: succeeded, failed, paused, superseded or gone."""
    principal = await _principal(services, claim)
    if principal is None:
        return "gone"  # the account was erased; its items went with it
    try:
        req = AltTextRequest.model_validate({**claim.options, "image_url": claim.image_url})
    except ValueError as exc:  # stored options were valid at creation; a later rule change
        await _fail(services, claim, _problem(_invalid(exc), claim.request_id))
        return "failed"
    model = req.model or services.settings.model_chain[0]
    try:
        async with _lease_kept(services, claim), _model_slot(services, model):
            await generate(
                services,
                principal,
                req,
                None,
                request_id=claim.request_id,
                keep=keeper(claim),
                interactive=False,
            )
        return "succeeded"
    except InsufficientCredits:
        await pause(services, claim)
        return "paused"
    except UpstreamUnavailable:
        # Every model's circuit is open: the item waits (pending again) instead of failing,
        # and this driver stops; the sweep wakes the account again a few seconds later.
        await give_back(services, claim)
        return "deferred"
    except Superseded:
        return "superseded"
    except AppError as exc:
        await _fail(services, claim, _problem(exc, claim.request_id))
        return "failed"
    except asyncio.CancelledError:
        await asyncio.shield(give_back(services, claim))
        raise
    except Exception:
        log.exception("job item failed", extra={"job_id": claim.job_id, "item": claim.item_id})
        await _fail(services, claim, _problem(InternalError(INTERNAL_DETAIL), claim.request_id))
        return "failed"


def _invalid(exc: ValueError) -> AppError:
    return InvalidRequest(f"The item's options are no longer valid: {str(exc)[:300]}")


async def _open_items(session: AsyncSession, job_id: str) -> bool:
    found = await session.scalar(
        select(JobItem.id)
        .where(JobItem.job_id == job_id, JobItem.status.in_(("pending", "running")))
        .limit(1)
    )
    return found is not None


async def finish_if_done(services: Services, job_id: str) -> bool:
    """End an open job whose items have all ended (and whose crawl is done): completed, or
    failed when not one item succeeded or was kept. Exactly one caller wins the transition."""
    # A read first: after almost every item the answer is "not yet", and a read takes no
    # write lock (SQLite has one for the whole database).
    async with services.sessions() as session:
        if await _open_items(session, job_id):
            return False
    async with transaction(services.sessions) as session:
        job = await session.get(Job, job_id)
        if job is None or job.status not in ("queued", "running"):
            return False
        if job.crawl_state in ("pending", "running"):
            return False
        if await _open_items(session, job_id):
            return False
        kept = await session.scalar(
            select(func.count())
            .select_from(JobItem)
            .where(JobItem.job_id == job_id, JobItem.status.in_(("succeeded", "skipped")))
        )
        failed = job.total_items > 0 and not kept
        status = "failed" if failed else "completed"
        ended = await session.execute(
            update(Job)
            .where(Job.id == job_id, Job.status.in_(("queued", "running")))
            .values(
                status=status,
                finished_at=utcnow(),
                error="Every item failed; see each item's problem." if failed else None,
            )
        )
        if not ended.rowcount:  # type: ignore[attr-defined]
            return False
        await session.refresh(job)
        await finish_event(session, job, f"job.{status}")
    return True


async def drive(services: Services, account_id: str, stopping: asyncio.Event) -> int:
    """Run the account's items until none is claimable or the process stops; returns how many
    attempts ran."""
    ran = 0
    while not stopping.is_set():
        claim = await claim_next(services, account_id)
        if claim is None:
            return ran
        outcome = await run_item(services, claim)
        ran += 1
        if outcome in ("paused", "deferred"):
            return ran
        await finish_if_done(services, claim.job_id)
    return ran


async def release_dead_attempt(session: AsyncSession, request_id: str | None) -> None:
    """Give back the credit an attempt reserved before its worker died (if it did)."""
    if request_id is not None:
        await credits.release(session, request_id=request_id, note="job worker lost")
