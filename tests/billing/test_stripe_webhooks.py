"""POST /webhooks/stripe: signed events from the fake Stripe turn payments into credits, once."""

from __future__ import annotations

import asyncio
import json
import time
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest

from alttext.billing.checkout import price_pack, session_params
from alttext.billing.ledger import book
from alttext.billing.stripe_client import StripeGateway
from alttext.billing.webhooks import process_pending
from alttext.db import transaction, utcnow
from tests.billing.stripe_support import (
    balance,
    buy,
    deliver,
    entries,
    inbox,
    sessions,
    stripe_settings,
)
from tests.fakes.stripe import FakeStripe, sign


async def use_credits(svc: Any, account_id: str, n: int) -> None:
    async with transaction(sessions(svc)) as session:
        for i in range(n):
            await book(
                session, account_id=account_id, kind="usage", credits=-1, reference=f"usage:t{i}"
            )


async def test_checkout_then_signed_webhook_credits_the_account(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    """The full flow, on SQLite and (when configured) PostgreSQL."""
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("flow@example.com", credits=0)
        paid = await buy(svc, fake_stripe, acct, 5)
        assert await balance(svc, acct) == 0  # nothing until Stripe says it is paid

        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        assert response.status_code == 200, response.text
        assert response.json()["state"] == "processed"
        assert response.json()["duplicate"] is False
        assert await balance(svc, acct) == 166

        charge = fake_stripe.charge_for(paid["id"])
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("charge.succeeded", charge)
        )
        assert response.json()["state"] == "processed"

        txns = (await svc.client.get("/v1/billing/transactions", headers=acct.headers)).json()
        (purchase,) = txns["data"]
        assert purchase["id"].startswith("txn_")
        assert purchase["kind"] == "purchase"
        assert purchase["credits"] == 166
        assert purchase["amount_usd"] == 5.0
        assert purchase["reference"] == paid["payment_intent"]
        assert purchase["receipt_url"] == charge["receipt_url"]
        assert txns["has_more"] is False

        # The inbox keeps what processing needs, not the customer's name or address.
        rows = {r.type: r for r in await inbox(svc)}
        stored = rows["checkout.session.completed"]
        assert stored.account_id == acct.id
        assert stored.state == "processed"
        assert "Jenny" not in stored.payload
        assert "customer_details" not in stored.payload
        assert "Jenny" not in rows["charge.succeeded"].payload


async def test_the_same_event_five_times_concurrently_credits_once(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("five@example.com", credits=0)
        event = fake_stripe.event("checkout.session.completed", await buy(svc, fake_stripe, acct))
        responses = await asyncio.gather(
            *(deliver(svc.client, fake_stripe, event) for _ in range(5))
        )
        assert [r.status_code for r in responses] == [200] * 5
        assert sorted(r.json()["duplicate"] for r in responses) == [False] + [True] * 4
        assert await balance(svc, acct) == 166
        assert [(e.kind, e.credits) for e in await entries(svc, acct.id)] == [("purchase", 166)]
        assert len(await inbox(svc)) == 1


async def test_completed_and_async_succeeded_credit_one_payment_once(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("async@example.com", credits=0)
        response = await svc.client.post(
            "/v1/billing/checkout", json={"amount_usd": 6}, headers=acct.headers
        )
        session_id = response.json()["session_id"]
        unpaid = fake_stripe.pay(session_id, async_payment=True)
        first = await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", unpaid)
        )
        assert first.json()["state"] == "processed"
        assert await balance(svc, acct) == 0  # completed, but the bank debit is not through
        paid = fake_stripe.settle_async(session_id)
        for event_type in (
            "checkout.session.async_payment_succeeded",
            "checkout.session.completed",
        ):
            await deliver(svc.client, fake_stripe, fake_stripe.event(event_type, paid))
        assert await balance(svc, acct) == 200
        assert [e.reference for e in await entries(svc, acct.id)] == [
            f"stripe:purchase:{paid['payment_intent']}"
        ]

        # A failed bank debit is recorded and credits nothing.
        other = await svc.client.post(
            "/v1/billing/checkout", json={"amount_usd": 5}, headers=acct.headers
        )
        failed = fake_stripe.pay(other.json()["session_id"], async_payment=True)
        response = await deliver(
            svc.client,
            fake_stripe,
            fake_stripe.event("checkout.session.async_payment_failed", failed),
        )
        assert response.status_code == 200
        assert response.json()["state"] == "processed"
        assert await balance(svc, acct) == 200


@pytest.mark.parametrize("attack", ["wrong_secret", "tampered", "no_header", "garbage", "expired"])
async def test_bad_signatures_are_400_and_change_nothing(
    service_factory: Any, fake_stripe: FakeStripe, attack: str
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("forge@example.com", credits=0)
        event = fake_stripe.event("checkout.session.completed", await buy(svc, fake_stripe, acct))
        body, header = fake_stripe.signed(event)
        if attack == "wrong_secret":
            body, header = fake_stripe.signed(event, secret="whsec_attacker")
        elif attack == "tampered":
            event["data"]["object"]["metadata"]["credits"] = "1000000"
            body = json.dumps(event).encode()
        elif attack == "garbage":
            header = "t=abc,v1=zz"
        elif attack == "expired":  # a replay of a genuine event, 10 minutes old
            body, header = fake_stripe.signed(event, timestamp=int(time.time()) - 600)
        headers = {"Content-Type": "application/json"}
        if attack != "no_header":
            headers["Stripe-Signature"] = header
        response = await svc.client.post("/webhooks/stripe", content=body, headers=headers)
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["code"] == "invalid_request"
        assert await inbox(svc) == []
        assert await balance(svc, acct) == 0


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
async def test_a_body_that_is_not_utf8_is_a_clear_400(
    service_factory: Any, fake_stripe: FakeStripe, signed: bool
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("latin1@example.com", credits=0)
        event = fake_stripe.event("checkout.session.completed", await buy(svc, fake_stripe, acct))
        # "Renée" in Latin-1: a byte (0xE9) that is not valid UTF-8.
        payload = json.dumps(event).encode()[:-1] + b', "name": "Ren\xe9e"}'
        header = sign(payload, fake_stripe.webhook_secret) if signed else "t=1,v1=00"
        response = await svc.client.post(
            "/webhooks/stripe",
            content=payload,
            headers={"Content-Type": "application/json", "Stripe-Signature": header},
        )
        assert response.status_code == 400, response.text
        assert response.headers["content-type"] == "application/problem+json"
        problem = response.json()
        assert problem["code"] == "invalid_request"
        assert "UTF-8" in problem["detail"]
        assert await inbox(svc) == []
        assert await balance(svc, acct) == 0


@pytest.mark.parametrize("secret", [None, "", "  "])
async def test_without_a_webhook_secret_every_event_is_refused(
    service_factory: Any, fake_stripe: FakeStripe, secret: str | None
) -> None:
    async with service_factory(**stripe_settings(fake_stripe, stripe_webhook_secret=secret)) as svc:
        acct = await svc.create_account("nosecret@example.com", credits=0)
        event = fake_stripe.event("checkout.session.completed", await buy(svc, fake_stripe, acct))
        # Even an event "signed" with the empty secret an attacker could guess.
        for signing_secret in (fake_stripe.webhook_secret, ""):
            body, header = fake_stripe.signed(event, secret=signing_secret or " ")
            response = await svc.client.post(
                "/webhooks/stripe", content=body, headers={"Stripe-Signature": header}
            )
            assert response.status_code == 503
            assert "not configured" in response.json()["detail"]
        assert await inbox(svc) == []
        assert await balance(svc, acct) == 0


async def test_a_full_refund_after_partial_use_never_goes_below_zero(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("refund@example.com", credits=0)
        paid = await buy(svc, fake_stripe, acct, 5)
        await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        await use_credits(svc, acct.id, 100)
        assert await balance(svc, acct) == 66
        charge = fake_stripe.refund(fake_stripe.charge_for(paid["id"])["id"])
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("charge.refunded", charge)
        )
        assert response.json()["state"] == "processed"
        assert await balance(svc, acct) == 0
        refund = (await entries(svc, acct.id))[-1]
        assert (refund.kind, refund.credits, refund.amount_usd) == ("refund", -66, -5.0)
        assert refund.note == "refund of $5.00: 66 credits removed (100 had been used already)"
        assert refund.receipt_url == charge["receipt_url"]
        # The same refund reported again (a new event id) removes nothing more.
        await deliver(svc.client, fake_stripe, fake_stripe.event("charge.refunded", charge))
        assert await balance(svc, acct) == 0
        assert sum(e.credits for e in await entries(svc, acct.id)) == 0
        txns = await svc.client.get(
            "/v1/billing/transactions", params={"kind": "refund"}, headers=acct.headers
        )
        (shown,) = txns.json()["data"]
        assert shown["reference"] == charge["id"]
        assert shown["credits"] == -66


async def test_partial_refunds_remove_their_share_once_each(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("partial@example.com", credits=10)
        paid = await buy(svc, fake_stripe, acct, 6)  # 200 credits for 600 cents
        await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        charge_id = fake_stripe.charge_for(paid["id"])["id"]
        first = fake_stripe.refund(charge_id, 150)  # a quarter
        await deliver(svc.client, fake_stripe, fake_stripe.event("charge.refunded", first))
        assert await balance(svc, acct) == 160
        second = fake_stripe.refund(charge_id, 150)  # half refunded in all
        await deliver(svc.client, fake_stripe, fake_stripe.event("charge.refunded", second))
        assert await balance(svc, acct) == 110
        # The first refund's state delivered late changes nothing.
        await deliver(svc.client, fake_stripe, fake_stripe.event("charge.refunded", first))
        assert await balance(svc, acct) == 110
        refunds = [
            (e.credits, e.amount_usd) for e in await entries(svc, acct.id) if e.kind == "refund"
        ]
        assert refunds == [(-50, -1.5), (-50, -1.5)]


async def _scenario(svc: Any, fake: FakeStripe, acct: Any) -> list[dict[str, Any]]:
    """A purchase, its receipt, a partial and a full refund, as Stripe would report them."""
    paid = await buy(svc, fake, acct, 9)  # 300 credits
    charge_id = fake.charge_for(paid["id"])["id"]
    return [
        fake.event("charge.succeeded", fake.charge_for(paid["id"])),
        fake.event("checkout.session.completed", paid),
        fake.event("charge.refunded", fake.refund(charge_id, 300)),
        fake.event("charge.refunded", fake.refund(charge_id)),
    ]


def _shape(rows: list[Any]) -> list[tuple[str, int, float | None, bool]]:
    return sorted((e.kind, e.credits, e.amount_usd, e.receipt_url is not None) for e in rows)


async def test_events_in_reverse_order_end_in_the_same_ledger(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        forward = await svc.create_account("forward@example.com", credits=0)
        backward = await svc.create_account("backward@example.com", credits=0)
        for event in await _scenario(svc, fake_stripe, forward):
            assert (await deliver(svc.client, fake_stripe, event)).status_code == 200
        events = await _scenario(svc, fake_stripe, backward)
        states = []
        for event in reversed(events):
            states.append((await deliver(svc.client, fake_stripe, event)).json()["state"])
        # Both refunds wait for the purchase; booking it runs them in Stripe's order.
        assert states == ["pending", "pending", "processed", "processed"]
        assert await balance(svc, forward) == await balance(svc, backward) == 0
        assert _shape(await entries(svc, forward.id)) == _shape(await entries(svc, backward.id))
        assert _shape(await entries(svc, backward.id)) == [
            ("purchase", 300, 9.0, True),
            ("refund", -200, -6.0, True),
            ("refund", -100, -3.0, True),
        ]
        assert {r.state for r in await inbox(svc)} == {"processed"}


async def test_a_dispute_suspends_the_account_and_is_recorded(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("dispute@example.com", credits=0)
        paid = await buy(svc, fake_stripe, acct, 5)
        dispute = fake_stripe.dispute(fake_stripe.charge_for(paid["id"])["id"])
        # Delivered before the purchase: it waits, then applies.
        early = await deliver(
            svc.client, fake_stripe, fake_stripe.event("charge.dispute.created", dispute)
        )
        assert early.json()["state"] == "pending"
        await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        account = (await svc.client.get("/v1/account", headers=acct.headers)).json()
        assert account["status"] == "suspended"
        assert account["credits_remaining"] == 166
        adjustment = [e for e in await entries(svc, acct.id) if e.kind == "adjustment"]
        assert [(e.credits, e.reference) for e in adjustment] == [
            (0, f"stripe:dispute:{dispute['id']}")
        ]
        assert "disputed ($5.00, reason: fraudulent)" in (adjustment[0].note or "")
        refused = await svc.client.post(
            "/v1/billing/checkout", json={"amount_usd": 5}, headers=acct.headers
        )
        assert refused.status_code == 403


async def test_unknown_types_and_unknown_accounts_are_acknowledged(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        response = await deliver(
            svc.client,
            fake_stripe,
            fake_stripe.event("customer.created", {"id": "cus_1", "object": "customer"}),
        )
        assert response.status_code == 200
        assert response.json()["state"] == "ignored"

        acct = await svc.create_account("ghost@example.com", credits=0)
        paid = await buy(svc, fake_stripe, acct, 5)
        paid["metadata"]["account_id"] = "acct_doesnotexist"
        paid["client_reference_id"] = "acct_doesnotexist"
        paid["customer"] = "cus_unknown"
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        assert response.status_code == 200
        assert response.json()["state"] == "unmatched"
        flagged = [r for r in await inbox(svc) if r.state == "unmatched"]
        assert len(flagged) == 1
        assert flagged[0].account_id is None
        assert "no AltText account" in (flagged[0].detail or "")
        assert await balance(svc, acct) == 0

        # A session not opened by AltText (no credit count) is flagged, not guessed at.
        paid = await buy(svc, fake_stripe, acct, 5)
        paid["metadata"] = {}
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        assert response.json()["state"] == "unmatched"
        assert await balance(svc, acct) == 0


async def test_a_webhook_before_checkout_returned_still_credits(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    """Stripe's event can beat our own response: the customer id is not stored yet."""
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("early@example.com", credits=0)
        settings = svc.settings
        async with StripeGateway.from_settings(settings) as gateway:
            customer = await gateway.create_customer(
                account_id=acct.id, email=acct.email, idempotency_key="k1"
            )
            pack = price_pack(Decimal(5), price_per_image_usd=0.03, min_usd=5)
            started = await gateway.create_checkout_session(
                session_params(settings, account_id=acct.id, customer_id=customer, pack=pack),
                idempotency_key="k2",
            )
        paid = fake_stripe.pay(started.id)
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("checkout.session.completed", paid)
        )
        assert response.json()["state"] == "processed"
        assert await balance(svc, acct) == 166


async def test_the_sweeper_gives_up_on_events_that_never_match(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        orphan = {
            "id": "ch_orphan",
            "object": "charge",
            "amount": 500,
            "amount_refunded": 500,
            "payment_intent": "pi_never_booked",
            "receipt_url": None,
        }
        response = await deliver(
            svc.client, fake_stripe, fake_stripe.event("charge.refunded", orphan)
        )
        assert response.json()["state"] == "pending"
        assert await process_pending(sessions(svc)) == 0  # still waiting
        later = utcnow() + timedelta(days=4)
        assert await process_pending(sessions(svc), now=later) == 1
        (row,) = await inbox(svc)
        assert row.state == "unmatched"
        assert row.attempts == 3


async def test_transactions_are_paginated_newest_first(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("pages@example.com", credits=5)
        for i in range(4):
            async with transaction(sessions(svc)) as session:
                await book(
                    session, account_id=acct.id, kind="grant", credits=i + 1, reference=f"g{i}"
                )
            await asyncio.sleep(0.002)  # distinct milliseconds: ids order by time
        seen: list[str] = []
        cursor = None
        while True:
            params: dict[str, Any] = {"limit": 2}
            if cursor:
                params["starting_after"] = cursor
            page = (
                await svc.client.get(
                    "/v1/billing/transactions", params=params, headers=acct.headers
                )
            ).json()
            seen += [t["id"] for t in page["data"]]
            if not page["has_more"]:
                break
            cursor = page["data"][-1]["id"]
        assert len(seen) == 5
        assert seen == sorted(seen, reverse=True)
        first = (await svc.client.get("/v1/billing/transactions", headers=acct.headers)).json()
        assert [t["credits"] for t in first["data"]] == [4, 3, 2, 1, 5]
        bad = await svc.client.get(
            "/v1/billing/transactions", params={"limit": 101}, headers=acct.headers
        )
        assert bad.status_code == 422
        bad = await svc.client.get(
            "/v1/billing/transactions", params={"starting_after": "nope"}, headers=acct.headers
        )
        assert bad.status_code == 400
        # Another account sees none of these.
        other = await svc.create_account("pages2@example.com", credits=0)
        empty = (await svc.client.get("/v1/billing/transactions", headers=other.headers)).json()
        assert empty == {"object": "list", "data": [], "has_more": False}


async def test_an_oversized_webhook_body_is_refused(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        response = await svc.client.post(
            "/webhooks/stripe",
            content=b"x" * (600 * 1024),
            headers={"Stripe-Signature": "t=1,v1=a"},
        )
        assert response.status_code == 413
        assert await inbox(svc) == []
