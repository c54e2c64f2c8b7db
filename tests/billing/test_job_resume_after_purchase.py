"""Out of credits in the middle of a job, then a real purchase: the job pauses (and says so with
a signed ``job.paused`` webhook), Stripe's signed ``checkout.session.completed`` reaches
``POST /webhooks/stripe``, and the job resumes by itself and completes — each item charged once,
the ledger summing to the balance."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import select
from standardwebhooks import Webhook

from alttext.billing.ledger import ITEM_USAGE_PREFIX, TRANSFER_PREFIXES
from alttext.billing.models import CreditEntry
from alttext.jobstore.models import JobItem
from tests.billing.stripe_support import balance, buy, deliver, sessions, stripe_settings
from tests.conftest import openrouter_settings
from tests.fakes.fixtures import running_image_host
from tests.fakes.openrouter import FakeOpenRouter
from tests.fakes.stripe import FakeStripe
from tests.jobs.helpers import FAST_JOBS, ledger_sum, png, wait_for, wait_status
from tests.jobs.webhook_receiver import Receiver, run_receiver

pytestmark = pytest.mark.anyio

ITEMS = 8
START = 3
PACK = 166  # credits a $5 pack buys (tests/billing/test_stripe_webhooks.py)


async def _delivered(receiver: Receiver, kind: str) -> dict[str, Any]:
    async def arrived() -> bool:
        return any(
            d.status == 200 and json.loads(d.body)["type"] == kind for d in receiver.deliveries()
        )

    await wait_for(arrived, timeout=30)
    delivery = next(d for d in receiver.deliveries() if json.loads(d.body)["type"] == kind)
    assert delivery.verified
    event: dict[str, Any] = json.loads(delivery.body)
    return event


async def test_a_job_paused_out_of_credits_resumes_after_a_stripe_purchase(
    service_factory: Callable[..., Any],
    fake_openrouter: FakeOpenRouter,
    fake_stripe: FakeStripe,
) -> None:
    settings = openrouter_settings(
        fake_openrouter,
        **stripe_settings(fake_stripe),
        **FAST_JOBS,
        job_concurrency_per_account=1,
        webhook_retry_base_s=0.2,
    )
    with running_image_host() as host, run_receiver() as receiver:
        items = []
        for i in range(ITEMS):
            host.image(f"/p{i}.png", png(i))
            items.append({"id": f"sku-{i}", "image_url": host.url(f"/p{i}.png")})
        async with service_factory(**settings) as svc:
            acct = await svc.create_account("buyer@example.com", credits=START)
            secret = (await svc.client.get("/v1/webhooks/secret", headers=acct.headers)).json()[
                "secret"
            ]
            receiver.reset(secret)
            created = await svc.client.post(
                "/v1/jobs", headers=acct.headers, json={"items": items, "webhook_url": receiver.url}
            )
            assert created.status_code == 202, created.text
            job_id = created.json()["id"]

            paused = await wait_status(svc.client, job_id, acct.headers, ("paused",))
            assert paused["counts"]["succeeded"] == START
            assert paused["counts"]["pending"] == ITEMS - START
            assert paused["credits_spent"] == START
            assert await balance(svc, acct) == 0
            event = await _delivered(receiver, "job.paused")
            assert event["data"]["job"]["id"] == job_id
            assert event["data"]["job"]["status"] == "paused"
            paused_delivery = next(
                d for d in receiver.deliveries() if json.loads(d.body)["type"] == "job.paused"
            )
            Webhook(secret).verify(paused_delivery.body, paused_delivery.headers)

            # The purchase, the real way: Checkout, paid at Stripe, Stripe's signed event.
            paid = await buy(svc, fake_stripe, acct, 5)
            response = await deliver(
                svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
            )
            assert response.status_code == 200, response.text
            assert response.json()["state"] == "processed"

            done = await wait_status(svc.client, job_id, acct.headers, ("completed",))
            assert done["counts"]["succeeded"] == ITEMS
            assert done["credits_spent"] == ITEMS
            completed = await _delivered(receiver, "job.completed")
            assert completed["data"]["job"]["counts"]["succeeded"] == ITEMS

            expected = START + PACK - ITEMS
            assert await balance(svc, acct) == expected
            assert await ledger_sum(sessions(svc), acct.id) == expected
            async with sessions(svc)() as session:
                charged = dict(
                    (
                        await session.execute(
                            select(JobItem.id, JobItem.credits).where(JobItem.job_id == job_id)
                        )
                    ).all()
                )
                item_refs = list(
                    (
                        await session.execute(
                            select(CreditEntry.reference).where(
                                CreditEntry.account_id == acct.id,
                                CreditEntry.reference.startswith(ITEM_USAGE_PREFIX),
                            )
                        )
                    ).scalars()
                )
            # Each item charged once: one credit on the item, one item charge in the ledger.
            assert sorted(charged.values()) == [1] * ITEMS
            assert sorted(item_refs) == sorted(f"{ITEM_USAGE_PREFIX}{i}" for i in charged)

            # What the customer sees: the purchase once, one spend per item, summing right.
            listed = await svc.client.get(
                "/v1/billing/transactions", headers=acct.headers, params={"limit": 100}
            )
            rows = listed.json()["data"]
            assert [r["credits"] for r in rows if r["kind"] == "purchase"] == [PACK]
            assert sum(1 for r in rows if r["kind"] == "usage") == ITEMS
            assert not any(r["reference"].startswith(TRANSFER_PREFIXES) for r in rows)
            assert sum(r["credits"] for r in rows) == expected
