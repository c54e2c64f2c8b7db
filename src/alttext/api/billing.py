"""``POST /v1/billing/checkout``, ``GET /v1/billing/transactions``, ``POST /webhooks/stripe``."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from fastapi import APIRouter, Header, Query, Request

from alttext import idempotency
from alttext.api.openapi import REQUIRED, id_schema, idempotency_key_header, problems
from alttext.api.routes import ResourceRoute
from alttext.billing.checkout import start_checkout
from alttext.billing.models import CreditEntry
from alttext.billing.schemas import (
    CheckoutOut,
    CheckoutRequest,
    TransactionList,
    TransactionOut,
    WebhookAck,
)
from alttext.billing.stripe_client import InvalidSignature
from alttext.billing.transactions import MAX_PAGE, list_entries, public_reference
from alttext.billing.webhooks import MAX_WEBHOOK_BYTES, receive
from alttext.db import iso_utc
from alttext.errors import AccountRestricted, InvalidRequest
from alttext.http.body import read_body
from alttext.http.deps import PrincipalDep, ServicesDep

router = APIRouter(route_class=ResourceRoute)
_TXN_ID = re.compile(r"^txn_[0-9a-z]{26}$")


@router.post(
    "/v1/billing/checkout",
    response_model=CheckoutOut,
    tags=["billing"],
    summary="Start a Stripe Checkout for a credit pack",
    responses=problems(403, 409, 503),
    description="Credits are the amount divided by the price per image, rounded down, and "
    "never expire. They are added when Stripe confirms the payment (webhook), not here.",
)
async def create_checkout(
    body: CheckoutRequest,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[
        str | None,
        idempotency_key_header("Retry safely: the same key and amount return the same Checkout."),
    ] = None,
) -> CheckoutOut:
    key = idempotency.validate_key(idempotency_key)
    if principal.restricted:
        raise AccountRestricted(
            "You restricted processing for this account (GDPR Art. 18); lift the restriction "
            "to buy credits."
        )
    started = await start_checkout(
        services.sessions,
        services.settings,
        account_id=principal.account_id,
        amount_usd=body.amount_usd,
        idempotency_key=key,
    )
    return CheckoutOut(
        checkout_url=started.checkout_url,
        session_id=started.session_id,
        credits=started.pack.credits,
        amount_usd=float(started.pack.amount_usd),
    )


def _txn_out(entry: CreditEntry) -> TransactionOut:
    return TransactionOut(
        id=entry.id,
        kind=entry.kind,
        credits=int(entry.credits),
        amount_usd=None if entry.amount_usd is None else round(float(entry.amount_usd), 4),
        reference=public_reference(entry.reference),
        receipt_url=entry.receipt_url,
        note=entry.note,
        created_at=iso_utc(entry.created_at),
    )


@router.get(
    "/v1/billing/transactions",
    response_model=TransactionList,
    tags=["billing"],
    summary="The credit ledger, newest first",
    responses=problems(400, meanings={400: "starting_after is not a transaction id"}),
)
async def list_transactions(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    starting_after: Annotated[
        str | None,
        Query(
            description="The id of the last transaction of the previous page.",
            json_schema_extra=id_schema("txn"),
        ),
    ] = None,
    kind: Literal["grant", "purchase", "usage", "release", "refund", "adjustment"] | None = None,
) -> TransactionList:
    if starting_after is not None and not _TXN_ID.match(starting_after):
        raise InvalidRequest("starting_after must be a transaction id (txn_…).", status=400)
    async with services.sessions() as session:
        entries, has_more = await list_entries(
            session, principal.account_id, limit=limit, starting_after=starting_after, kind=kind
        )
    return TransactionList(data=[_txn_out(e) for e in entries], has_more=has_more)


@router.post(
    "/webhooks/stripe",
    response_model=WebhookAck,
    tags=["billing"],
    summary="Stripe events (signed with the endpoint's secret)",
    responses=problems(
        400,
        408,
        413,
        503,
        meanings={
            400: "Missing, invalid or expired Stripe-Signature",
            503: "No webhook secret is configured",
        },
    ),
    description="Answers 400 for a missing, invalid or expired Stripe-Signature (nothing is "
    "stored) and 503 when this deployment has no webhook secret configured.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "A Stripe event, exactly as Stripe sent and signed it.",
                    }
                }
            },
        }
    },
)
async def receive_stripe_event(
    request: Request,
    services: ServicesDep,
    stripe_signature: Annotated[
        str | None,
        Header(
            alias="Stripe-Signature",
            description="Stripe's signature of the body (t=…,v1=…)",
            json_schema_extra=REQUIRED,
        ),
    ] = None,
) -> WebhookAck:
    payload = await read_body(request, MAX_WEBHOOK_BYTES)
    try:
        result = await receive(
            services.sessions,
            payload=payload,
            signature=stripe_signature,
            secret=services.settings.stripe_webhook_secret,
        )
    except UnicodeDecodeError:
        # The Stripe SDK decodes the body before it checks the signature: a body that is not
        # UTF-8 (never one Stripe signed) raised out of it as a 500.
        raise InvalidSignature("The signed payload is not JSON.") from None
    return WebhookAck(id=result.event_id, duplicate=result.duplicate, state=result.state)
