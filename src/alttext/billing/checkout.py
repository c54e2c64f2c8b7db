"""Buying credits: price a pack, make sure the account has a Stripe customer, open Checkout.

No database transaction is held across a Stripe call: read (short), call Stripe, write (short).
Credits are booked only by the webhook (billing/stripe_events.py), never here.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from alttext.accounts.models import Account
from alttext.billing.stripe_client import StripeGateway
from alttext.config import Settings
from alttext.db import transaction
from alttext.errors import Forbidden, InvalidRequest, NotFound

MAX_PURCHASE_USD = Decimal("10000")
PRODUCT_NAME = "AltText API credits"

GatewayFactory = Callable[[Settings], StripeGateway]


@dataclass(frozen=True)
class CreditPack:
    amount_usd: Decimal  # exactly what is charged, two decimals
    cents: int
    credits: int


@dataclass(frozen=True)
class CheckoutStarted:
    session_id: str
    checkout_url: str
    pack: CreditPack


def _amount_error(message: str) -> InvalidRequest:
    return InvalidRequest(message, errors=[{"field": "amount_usd", "message": message}])


def price_pack(amount_usd: Decimal, *, price_per_image_usd: float, min_usd: float) -> CreditPack:
    """Credits for an amount: rounded down to whole images, so a pack never costs less than
    the price per image ($5.00 at $0.03 buys 166 credits; the response states the count)."""
    minimum = Decimal(str(min_usd))
    if not amount_usd.is_finite():
        raise _amount_error("amount_usd must be a number of US dollars.")
    if amount_usd != amount_usd.quantize(Decimal("0.01")):
        raise _amount_error("amount_usd has at most two decimals (whole cents).")
    if amount_usd < minimum:
        raise _amount_error(f"The smallest purchase is ${minimum:.2f}.")
    if amount_usd > MAX_PURCHASE_USD:
        raise _amount_error(
            f"The largest purchase is ${MAX_PURCHASE_USD:,.2f}; contact us for more."
        )
    price = Decimal(str(price_per_image_usd))
    credits = int((amount_usd / price).to_integral_value(rounding=ROUND_FLOOR))
    if credits < 1:
        raise _amount_error(f"${amount_usd:.2f} does not buy one image at ${price} an image.")
    return CreditPack(amount_usd=amount_usd, cents=int(amount_usd * 100), credits=credits)


def format_price(price_per_image_usd: float) -> str:
    """$0.03, $0.10, $0.005: at least two decimals, no float noise."""
    text = format(Decimal(str(price_per_image_usd)).normalize(), "f")
    whole, _, frac = text.partition(".")
    return f"${whole}.{frac.ljust(2, '0')}"


def stripe_idempotency_key(account_id: str, client_key: str | None) -> str:
    """The client's key (hashed: it may be long or odd) makes a retried checkout return the
    same Stripe session; without one every call opens a new session."""
    if client_key is None:
        return f"alttext:checkout:{account_id}:{uuid.uuid4().hex}"
    digest = hashlib.sha256(client_key.encode()).hexdigest()[:40]
    return f"alttext:checkout:{account_id}:{digest}"


def session_params(
    settings: Settings, *, account_id: str, customer_id: str, pack: CreditPack
) -> dict[str, Any]:
    base = settings.public_url.rstrip("/")
    metadata = {
        "account_id": account_id,
        "credits": str(pack.credits),
        "amount_usd": f"{pack.amount_usd:.2f}",
    }
    price = format_price(settings.price_per_image_usd)
    return {
        "mode": "payment",
        "customer": customer_id,
        "client_reference_id": account_id,
        "line_items": [
            {
                "quantity": 1,
                "price_data": {
                    "currency": "usd",
                    "unit_amount": pack.cents,
                    "product_data": {
                        "name": PRODUCT_NAME,
                        "description": f"{pack.credits} credits — {price} per image, never expire",
                    },
                },
            }
        ],
        "metadata": metadata,
        # Also on the PaymentIntent, so charges and disputes in the Stripe dashboard name it.
        "payment_intent_data": {"metadata": metadata},
        # The dashboard's credits page (DASHBOARD.md); credits arrive with the webhook, not here.
        "success_url": f"{base}/dashboard/credits?checkout=success"
        "&session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": f"{base}/dashboard/credits?checkout=cancel",
    }


async def _account(sessions: async_sessionmaker[AsyncSession], account_id: str) -> Account:
    async with sessions() as session:
        account = await session.get(Account, account_id)
    if account is None:
        raise NotFound("The account no longer exists.")
    if account.status == "suspended":
        raise Forbidden(
            "This account is suspended after a payment dispute; contact support to resolve it."
        )
    return account


async def ensure_customer(
    sessions: async_sessionmaker[AsyncSession], gateway: StripeGateway, account: Account
) -> str:
    """The account's Stripe customer, created once even under concurrent checkouts: the
    idempotency key derives from the account id, so Stripe returns one customer to both."""
    if account.stripe_customer_id:
        return account.stripe_customer_id
    customer_id = await gateway.create_customer(
        account_id=account.id,
        email=account.email,
        idempotency_key=f"alttext:customer:{account.id}",
    )
    async with transaction(sessions) as session:
        await session.execute(
            update(Account)
            .where(Account.id == account.id, Account.stripe_customer_id.is_(None))
            .values(stripe_customer_id=customer_id)
        )
        stored = await session.scalar(
            select(Account.stripe_customer_id).where(Account.id == account.id)
        )
    return str(stored or customer_id)


async def start_checkout(
    sessions: async_sessionmaker[AsyncSession],
    settings: Settings,
    *,
    account_id: str,
    amount_usd: Decimal,
    idempotency_key: str | None = None,
    gateway_factory: GatewayFactory = StripeGateway.from_settings,
) -> CheckoutStarted:
    pack = price_pack(
        amount_usd,
        price_per_image_usd=settings.price_per_image_usd,
        min_usd=settings.min_purchase_usd,
    )
    account = await _account(sessions, account_id)
    gateway = gateway_factory(settings)  # refuses when billing is not configured
    async with gateway:
        customer_id = await ensure_customer(sessions, gateway, account)
        session = await gateway.create_checkout_session(
            session_params(settings, account_id=account_id, customer_id=customer_id, pack=pack),
            idempotency_key=stripe_idempotency_key(account_id, idempotency_key),
        )
    return CheckoutStarted(session_id=session.id, checkout_url=session.url, pack=pack)
