"""POST /v1/billing/checkout against the fake Stripe (a real server the official SDK talks to)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from alttext.accounts.models import Account
from alttext.billing.checkout import format_price, price_pack
from alttext.errors import InvalidRequest
from tests.billing.stripe_support import (
    checkout,
    sessions,
    stripe_settings,
)
from tests.fakes.stripe import FakeStripe, closed_port_url


async def customer_id(svc: Any, account_id: str) -> str | None:
    async with sessions(svc)() as session:
        value = await session.scalar(
            select(Account.stripe_customer_id).where(Account.id == account_id)
        )
    return value


async def test_checkout_opens_a_stripe_session_for_a_credit_pack(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("buyer@example.com", credits=0)
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["credits"] == 166  # floor(5 / 0.03)
        assert body["amount_usd"] == 5.0
        assert body["session_id"].startswith("cs_test_")
        assert body["checkout_url"] == f"https://checkout.stripe.com/c/pay/{body['session_id']}"

        session = fake_stripe.sessions[body["session_id"]]
        assert session["mode"] == "payment"
        assert session["client_reference_id"] == acct.id
        assert session["metadata"] == {
            "account_id": acct.id,
            "credits": "166",
            "amount_usd": "5.00",
        }
        assert session["success_url"] == (
            "https://alttext.example/dashboard/credits?checkout=success"
            "&session_id={CHECKOUT_SESSION_ID}"
        )
        assert session["cancel_url"] == "https://alttext.example/dashboard/credits?checkout=cancel"
        (item,) = fake_stripe.line_items(body["session_id"])
        assert item["quantity"] == "1"
        assert item["price_data"]["unit_amount"] == "500"
        assert item["price_data"]["product_data"] == {
            "name": "AltText API credits",
            "description": "166 credits — $0.03 per image, never expire",
        }
        # The customer was created once, tied to the account, and stored.
        (customer,) = fake_stripe.customers.values()
        assert customer["metadata"] == {"account_id": acct.id}
        assert customer["email"] == "buyer@example.com"
        assert session["customer"] == customer["id"]
        assert await customer_id(svc, acct.id) == customer["id"]
        # Every POST to Stripe carried an idempotency key.
        posts = [r for r in fake_stripe.requests if r.method == "POST"]
        assert [r.path for r in posts] == ["/v1/customers", "/v1/checkout/sessions"]
        assert all(r.idempotency_key for r in posts)

        # A second checkout reuses the customer.
        again = await checkout(svc.client, acct.headers, "20.01")
        assert again.status_code == 200, again.text
        assert again.json()["credits"] == 667
        assert len(fake_stripe.customers) == 1
        assert [r.path for r in fake_stripe.requests].count("/v1/customers") == 1


async def test_concurrent_first_checkouts_create_one_customer(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("rush@example.com", credits=0)
        responses = await asyncio.gather(
            *(checkout(svc.client, acct.headers, 10) for _ in range(5))
        )
        assert [r.status_code for r in responses] == [200] * 5
        assert len(fake_stripe.customers) == 1
        assert len({r.json()["session_id"] for r in responses}) == 5  # no client key: 5 sessions
        (only,) = fake_stripe.customers
        assert await customer_id(svc, acct.id) == only
        assert {s["customer"] for s in fake_stripe.sessions.values()} == {only}


async def test_idempotency_key_returns_the_same_session_and_refuses_another_amount(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("retry@example.com", credits=0)
        key = {"Idempotency-Key": "buy-2026-01-01"}
        first = await checkout(svc.client, acct.headers, 5, **key)
        second = await checkout(svc.client, acct.headers, 5, **key)
        assert first.status_code == second.status_code == 200
        assert first.json()["session_id"] == second.json()["session_id"]
        assert len(fake_stripe.sessions) == 1
        other = await checkout(svc.client, acct.headers, 6, **key)
        assert other.status_code == 409, other.text
        assert other.json()["code"] == "idempotency_conflict"
        # Another account with the same key gets its own session.
        acct2 = await svc.create_account("other@example.com", credits=0)
        third = await checkout(svc.client, acct2.headers, 5, **key)
        assert third.status_code == 200
        assert third.json()["session_id"] != first.json()["session_id"]


@pytest.mark.parametrize(
    ("amount", "fragment"),
    [
        (4.99, "smallest purchase is $5.00"),
        (0, "smallest purchase"),
        (-10, "smallest purchase"),
        ("abc", None),
        ("NaN", None),
        (None, None),
        ([5], None),
        (5.001, "two decimals"),
        (10_000.01, "largest purchase"),
        (1e308, None),  # found by the OpenAPI fuzz: once a 500 in Decimal arithmetic
        (1e-308, None),
    ],
)
async def test_bad_amounts_are_422_and_never_reach_stripe(
    service_factory: Any, fake_stripe: FakeStripe, amount: Any, fragment: str | None
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("bad@example.com", credits=0)
        response = await checkout(svc.client, acct.headers, amount)
        assert response.status_code == 422, response.text
        body = response.json()
        assert response.headers["content-type"] == "application/problem+json"
        assert body["code"] == "invalid_request"
        assert body["errors"][0]["field"] == "amount_usd"
        if fragment:
            assert fragment in body["detail"]
    assert fake_stripe.requests == []


async def test_missing_body_and_auth(service_factory: Any, fake_stripe: FakeStripe) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("x@example.com", credits=0)
        assert (
            await svc.client.post("/v1/billing/checkout", json={"amount_usd": 5})
        ).status_code == 401
        response = await svc.client.post("/v1/billing/checkout", json={}, headers=acct.headers)
        assert response.status_code == 422
    assert fake_stripe.requests == []


async def test_stripe_unreachable_is_503_with_a_clear_message(service_factory: Any) -> None:
    settings = {"stripe_secret_key": "sk_test_x", "stripe_api_base": closed_port_url()}
    async with service_factory(**settings) as svc:
        acct = await svc.create_account("down@example.com", credits=0)
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["code"] == "service_unavailable"
        assert "Stripe is unreachable" in body["detail"]
        assert "Nothing was charged" in body["detail"]
        assert int(response.headers["Retry-After"]) >= 1
        assert await customer_id(svc, acct.id) is None


async def test_stripe_errors_are_503_and_a_passing_blip_is_retried(
    service_factory: Any, fake_stripe: FakeStripe
) -> None:
    async with service_factory(**stripe_settings(fake_stripe)) as svc:
        acct = await svc.create_account("blip@example.com", credits=0)
        fake_stripe.fail_next(500)  # not retryable: answered at once
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 503
        assert "HTTP 500" in response.json()["detail"]
        # A retryable 503 is retried by the SDK with the same idempotency key, and succeeds.
        fake_stripe.fail_next(503, retryable=True)
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 200, response.text
        keys = [r.idempotency_key for r in fake_stripe.requests if r.path == "/v1/customers"]
        assert len(keys) == 3  # the first failure, the retried 503, the success
        assert len(set(keys)) == 1  # one key per account, every attempt
        assert len(fake_stripe.customers) == 1


async def test_a_refused_stripe_key_is_503(service_factory: Any, fake_stripe: FakeStripe) -> None:
    async with service_factory(
        **stripe_settings(fake_stripe, stripe_secret_key="sk_test_wrong")
    ) as svc:
        acct = await svc.create_account("key@example.com", credits=0)
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 503
        assert "Stripe key was refused" in response.json()["detail"]


@pytest.mark.parametrize("key", [None, "", "   "])
async def test_billing_not_configured_is_503(service_factory: Any, key: str | None) -> None:
    async with service_factory(stripe_secret_key=key) as svc:
        acct = await svc.create_account("nokey@example.com", credits=0)
        response = await checkout(svc.client, acct.headers, 5)
        assert response.status_code == 503
        assert "Billing is not configured on this deployment" in response.json()["detail"]


def test_pricing_rounds_down_to_whole_credits() -> None:
    def credits(amount: str, price: float = 0.03) -> int:
        return price_pack(Decimal(amount), price_per_image_usd=price, min_usd=5).credits

    assert credits("5") == 166
    assert credits("5.01") == 167
    assert credits("6") == 200
    assert credits("10000") == 333_333
    assert credits("5", price=0.1) == 50
    with pytest.raises(InvalidRequest, match="does not buy one image"):
        credits("5", price=7)
    assert price_pack(Decimal("19.99"), price_per_image_usd=0.03, min_usd=5).cents == 1999
    assert format_price(0.03) == "$0.03"
    assert format_price(0.1) == "$0.10"
    assert format_price(0.005) == "$0.005"
    assert format_price(2) == "$2.00"
