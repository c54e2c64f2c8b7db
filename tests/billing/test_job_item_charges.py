"""A job item is charged at most once by the ledger itself: its charge is booked under the
item's own reference (``usage:item:<item id>``), so a second attempt settling the same item
(a lease taken over while the first attempt was settling) cannot charge it again."""

from __future__ import annotations

import json
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

from sqlalchemy import select, update

from alttext.billing import credits
from alttext.billing.ledger import ITEM_USAGE_PREFIX, TRANSFER_PREFIXES
from alttext.billing.models import CreditEntry, CreditReservation
from alttext.db import transaction, utcnow
from alttext.ids import new_id
from alttext.jobs.runner import Claim, keeper
from alttext.jobstore.models import Job, JobItem
from tests.conftest import Account, Service
from tests.jobs.helpers import ledger_sum


def _description(alt: str) -> Any:
    # Only what the keeper writes.
    return SimpleNamespace(
        alt_text=alt,
        decorative=False,
        role="content",
        needs_review=False,
        review_reasons=[],
        model="google/gemini-2.5-flash-lite",
    )


async def _settle(sessions: Any, claim: Claim, alt: str) -> bool:
    """What ``generate`` does after the model answered: keep the result and settle the credit
    in one transaction, or release the credit if the result was not kept."""
    async with transaction(sessions) as session:
        kept = bool(await keeper(claim)(session, _description(alt), credits.CREDITS_PER_IMAGE))
        if kept:
            assert await credits.settle(session, request_id=claim.request_id)
        else:
            assert await credits.release(session, request_id=claim.request_id, note="superseded")
    return kept


async def _own(sessions: Any, item_id: str, request_id: str) -> None:
    """The item is running under ``request_id``'s lease."""
    async with transaction(sessions) as session:
        await session.execute(
            update(JobItem)
            .where(JobItem.id == item_id)
            .values(
                status="running",
                request_id=request_id,
                lease_until=utcnow() + timedelta(seconds=600),
            )
        )


async def test_two_attempts_settling_one_item_charge_it_once(
    service: Service, account: Account
) -> None:
    sessions = service.app.state.services.sessions
    job_id, item_id = new_id("job"), new_id("item")
    first, second = new_id("req"), new_id("req")
    async with transaction(sessions) as session:
        session.add(Job(id=job_id, account_id=account.id, status="running", total_items=1))
        await session.flush()
        session.add(
            JobItem(
                id=item_id,
                job_id=job_id,
                account_id=account.id,
                seq=0,
                image_url="https://example.com/a.png",
                status="pending",
            )
        )
    # Both attempts reserved their credit before either settled.
    for request_id in (first, second):
        async with transaction(sessions) as session:
            await credits.reserve(session, account_id=account.id, request_id=request_id, ttl_s=600)
    claims = [
        Claim(
            item_id, job_id, account.id, account.key_id, request_id, "https://example.com/a.png", {}
        )
        for request_id in (first, second)
    ]

    await _own(sessions, item_id, first)
    assert await _settle(sessions, claims[0], "first") is True
    # The race: the second attempt holds the item as if it had taken the lease over unseen
    # (the item's own guard is passed); only the ledger stands in the way now.
    await _own(sessions, item_id, second)
    assert await _settle(sessions, claims[1], "second") is False

    async with sessions() as session:
        entries = list(
            (
                await session.execute(
                    select(CreditEntry).where(CreditEntry.account_id == account.id)
                )
            ).scalars()
        )
        item = await session.get(JobItem, item_id)
        job = await session.get(Job, job_id)
        states = dict(
            (await session.execute(select(CreditReservation.id, CreditReservation.state))).all()
        )
    charges = [e for e in entries if e.reference.startswith(ITEM_USAGE_PREFIX)]
    assert [(e.reference, e.credits) for e in charges] == [(f"usage:item:{item_id}", -1)]
    assert states == {first: "settled", second: "released"}
    # Debited once: 100 starting credits, one charge; the ledger sums to the balance.
    balance = (await service.client.get("/v1/account", headers=account.headers)).json()
    assert balance["credits_remaining"] == 99
    assert await ledger_sum(sessions, account.id) == 99
    # Nothing of the second attempt was kept (its writes were rolled back with its charge).
    assert item is not None
    assert job is not None
    assert item.alt_text == "first"
    assert item.credits == 1
    assert json.loads(item.review_reasons or "[]") == []
    assert job.credits_spent == 1

    # The customer's ledger shows each attempt's spend and the second's release, not the
    # internal move of the first attempt's hold onto the item; it still sums to the balance.
    listed = await service.client.get(
        "/v1/billing/transactions", headers=account.headers, params={"limit": 100}
    )
    assert listed.status_code == 200, listed.text
    rows = listed.json()["data"]
    assert sorted((r["kind"], r["credits"]) for r in rows) == [
        ("grant", 100),
        ("release", 1),
        ("usage", -1),
        ("usage", -1),
    ]
    assert not any(r["reference"].startswith(TRANSFER_PREFIXES) for r in rows)
    assert sum(r["credits"] for r in rows) == 99
    only_usage = await service.client.get(
        "/v1/billing/transactions", headers=account.headers, params={"kind": "usage"}
    )
    assert len(only_usage.json()["data"]) == 2


async def test_an_attempt_that_lost_the_item_books_nothing(
    service: Service, account: Account
) -> None:
    """The item's own guard still comes first: a superseded attempt writes no ledger entry."""
    sessions = service.app.state.services.sessions
    job_id, item_id = new_id("job"), new_id("item")
    stale, current = new_id("req"), new_id("req")
    async with transaction(sessions) as session:
        session.add(Job(id=job_id, account_id=account.id, status="running", total_items=1))
        await session.flush()
        session.add(
            JobItem(
                id=item_id,
                job_id=job_id,
                account_id=account.id,
                seq=0,
                image_url="https://example.com/a.png",
                status="pending",
            )
        )
    async with transaction(sessions) as session:
        await credits.reserve(session, account_id=account.id, request_id=stale, ttl_s=600)
    await _own(sessions, item_id, current)
    claim = Claim(item_id, job_id, account.id, None, stale, "https://example.com/a.png", {})
    assert await _settle(sessions, claim, "stale") is False
    async with sessions() as session:
        refs = list(
            (
                await session.execute(
                    select(CreditEntry.reference).where(CreditEntry.account_id == account.id)
                )
            ).scalars()
        )
    assert not any(r.startswith(TRANSFER_PREFIXES) for r in refs)
    assert await ledger_sum(sessions, account.id) == 100
