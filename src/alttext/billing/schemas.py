"""Request and response bodies of the billing endpoints."""

from __future__ import annotations

from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CheckoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    amount_usd: Decimal = Field(
        description="US dollars to spend, whole cents, at least ALTTEXT_MIN_PURCHASE_USD "
        "(default 5) and at most 10,000.",
        examples=[5, 20, 49.99],
        allow_inf_nan=False,
        # Bounds the number's size before any arithmetic (1e308 is a valid JSON number).
        max_digits=12,
    )


class CheckoutOut(BaseModel):
    checkout_url: str = Field(description="Send the customer here to pay (Stripe Checkout).")
    session_id: str = Field(description="Stripe's Checkout Session id (cs_…).")
    credits: int = Field(description="Credits added once Stripe confirms the payment.")
    amount_usd: float = Field(description="What will be charged, in US dollars.")


class TransactionOut(BaseModel):
    id: str = Field(description="txn_…")
    object: Literal["credit_transaction"] = "credit_transaction"
    kind: str = Field(description="grant | purchase | usage | release | refund | adjustment")
    credits: int = Field(description="Signed: positive adds credits, negative removes them.")
    amount_usd: float | None = Field(description="Money moved (negative for refunds), if any.")
    reference: str = Field(
        description="What was booked: the Stripe object id (pi_…, ch_…, du_…) for payments, "
        "refunds and disputes; the request id for usage."
    )
    receipt_url: str | None = Field(description="Stripe's receipt, where Stripe provides one.")
    note: str | None
    created_at: str


class TransactionList(BaseModel):
    object: Literal["list"] = "list"
    data: list[TransactionOut]
    has_more: bool = Field(description="Pass the last id as starting_after for the next page.")


class WebhookAck(BaseModel):
    received: bool = True
    id: str
    duplicate: bool
    state: str = Field(description="pending | processed | ignored | unmatched")
