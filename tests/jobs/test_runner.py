"""jobs.runner: how claims and settlements of one account share its row on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest

from alttext.billing import ledger
from alttext.db import transaction
from alttext.ids import new_id
from alttext.jobs.runner import claim_next
from alttext.jobstore.models import Job, JobItem
from tests.conftest import Account, Service


async def test_a_claim_does_not_wait_for_a_settlement_booking_on_the_same_account(
    service: Service, account: Account, database_url: str
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite writers take turns: a claim waits for any open write")
    services = service.app.state.services
    job_id = new_id("job")
    async with transaction(services.sessions) as session:
        session.add(Job(id=job_id, account_id=account.id, status="running", total_items=1))
        await session.flush()
        session.add(
            JobItem(
                id=new_id("item"),
                job_id=job_id,
                account_id=account.id,
                seq=0,
                image_url="https://example.com/a.png",
                status="pending",
            )
        )
    booked = asyncio.Event()
    done = asyncio.Event()

    async def settling() -> None:
        # A settlement's ledger insert holds the account row's KEY SHARE (the foreign key)
        # until its transaction ends.
        async with transaction(services.sessions) as session:
            await ledger.add_new_entry(
                session,
                account_id=account.id,
                kind="usage",
                credits=-1,
                reference=f"usage:{new_id('req')}",
            )
            booked.set()
            await done.wait()

    settlement = asyncio.create_task(settling())
    await booked.wait()
    try:
        # A FOR UPDATE of the account would wait here until the settlement ended; the claims'
        # turn-taking lock (FOR NO KEY UPDATE) does not conflict with it.
        claim = await asyncio.wait_for(claim_next(services, account.id), timeout=5)
    finally:
        done.set()
        await settlement
    assert claim is not None
    assert claim.job_id == job_id
