"""Fixtures and helpers shared by the Stripe tests (imported by those test modules)."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select

from alttext.billing.models import CreditEntry, StripeEvent
from tests.fakes.stripe import FakeStripe


def stripe_settings(fake: FakeStripe, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "stripe_secret_key": fake.api_key,
        "stripe_api_base": fake.base_url,
        "stripe_webhook_secret": fake.webhook_secret,
        "public_url": "https://alttext.example",
        "rate_limit_per_minute": 100_000,
    }
    values.update(overrides)
    return values


async def deliver(
    client: httpx.AsyncClient,
    fake: FakeStripe,
    event: dict[str, Any],
    *,
    secret: str | None = None,
    timestamp: int | None = None,
) -> httpx.Response:
    body, header = fake.signed(event, secret=secret, timestamp=timestamp)
    return await client.post(
        "/webhooks/stripe",
        content=body,
        headers={"Stripe-Signature": header, "Content-Type": "application/json"},
    )


async def checkout(
    client: httpx.AsyncClient, headers: dict[str, str], amount: Any = 5, **extra: Any
) -> httpx.Response:
    return await client.post(
        "/v1/billing/checkout", json={"amount_usd": amount}, headers={**headers, **extra}
    )


async def buy(svc: Any, fake: FakeStripe, acct: Any, amount: Any = 5) -> dict[str, Any]:
    """Checkout and pay (no event delivered yet); the paid session."""
    response = await checkout(svc.client, acct.headers, amount)
    assert response.status_code == 200, response.text
    return fake.pay(response.json()["session_id"])


def sessions(svc: Any) -> Any:
    return svc.app.state.services.sessions


async def entries(svc: Any, account_id: str) -> list[CreditEntry]:
    async with sessions(svc)() as session:
        rows = await session.execute(
            select(CreditEntry)
            .where(CreditEntry.account_id == account_id)
            .order_by(CreditEntry.created_at, CreditEntry.id)
        )
        return list(rows.scalars())


async def inbox(svc: Any) -> list[StripeEvent]:
    async with sessions(svc)() as session:
        return list((await session.execute(select(StripeEvent))).scalars())


async def balance(svc: Any, acct: Any) -> int:
    response = await svc.client.get("/v1/account", headers=acct.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["credits_remaining"])
