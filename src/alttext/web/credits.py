"""``/dashboard/credits``: the balance, buying credits through Stripe Checkout, and the ledger
with receipts. Stripe sends the buyer back to ``?checkout=success`` or ``?checkout=cancel``;
credits arrive with Stripe's webhook, never from the return trip."""

from __future__ import annotations

import secrets
import uuid
from decimal import Decimal, InvalidOperation
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alttext.billing.checkout import start_checkout
from alttext.billing.models import CreditEntry
from alttext.billing.stripe_client import configured_secret
from alttext.billing.transactions import list_entries, public_reference
from alttext.errors import AppError, InvalidRequest, NotFound
from alttext.http.deps import ServicesDep
from alttext.web.dashboard import balance
from alttext.web.forms import read_form
from alttext.web.session import User
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)
PAGE = 50
KIND_NAMES = {
    "grant": "Credits given",
    "purchase": "Purchase",
    "usage": "Alt text",
    "release": "Refunded failure",
    "refund": "Refund",
    "adjustment": "Adjustment",
}


def billing_configured(services: Any) -> bool:
    return configured_secret(services.settings.stripe_secret_key) is not None


async def _page(
    request: Request,
    services: Any,
    user: Any,
    *,
    errors: dict[str, str] | None = None,
    amount: str = "",
    status_code: int = 200,
    failure: str | None = None,
) -> Response:
    async with services.sessions() as session:
        entries, has_more = await list_entries(session, user.account.id, limit=PAGE)
    checkout = request.query_params.get("checkout")
    context = {
        "active": "credits",
        "balance": await balance(services, user.account.id),
        "entries": entries,
        "has_more": has_more,
        "kind_names": KIND_NAMES,
        "reference": public_reference,
        "billing": billing_configured(services),
        "checkout": checkout if checkout in ("success", "cancel") else None,
        "errors": errors or {},
        "amount": amount or f"{services.settings.min_purchase_usd:g}",
        "restricted": user.account.restricted_at is not None,
        "failure": failure,
        "form_token": secrets.token_urlsafe(16),
    }
    return render(request, services, "credits.html", context, status_code=status_code)


@router.get("/dashboard/credits", response_class=HTMLResponse)
async def credits_page(request: Request, services: ServicesDep, user: User) -> Response:
    return await _page(request, services, user)


@router.post("/dashboard/credits/checkout")
async def buy(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    raw = form.get("amount_usd").strip().lstrip("$").replace(",", "")
    if not billing_configured(services):
        return await _page(request, services, user, status_code=503)
    try:
        amount = Decimal(raw)
        if not amount.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        errors = {"amount_usd": "Enter an amount in US dollars, such as 5 or 20.50."}
        return await _page(request, services, user, errors=errors, amount=raw, status_code=422)
    if user.account.restricted_at is not None:
        return await _page(request, services, user, status_code=403)
    try:
        started = await start_checkout(
            services.sessions,
            services.settings,
            account_id=user.account.id,
            amount_usd=amount,
            # The form's own token: a double submit opens the same Checkout.
            idempotency_key=form.get("idempotency_key") or uuid.uuid4().hex,
        )
    except InvalidRequest as exc:
        message = next((e["message"] for e in exc.errors or [] if e.get("message")), exc.detail)
        errors = {"amount_usd": str(message)}
        return await _page(request, services, user, errors=errors, amount=raw, status_code=422)
    except AppError as exc:
        return await _page(request, services, user, failure=exc.detail, status_code=exc.http_status)
    return RedirectResponse(started.checkout_url, status_code=303)


@router.get("/dashboard/credits/receipts/{entry_id}")
async def receipt(entry_id: str, services: ServicesDep, user: User) -> Response:
    """Stripe's receipt page, reached through our own link (no other origin in our pages)."""
    async with services.sessions() as session:
        entry = await session.get(CreditEntry, entry_id)
    if entry is None or entry.account_id != user.account.id or not entry.receipt_url:
        raise NotFound("No receipt with that id in your account.")
    if not entry.receipt_url.startswith("https://"):
        raise NotFound("No receipt with that id in your account.")
    return RedirectResponse(entry.receipt_url, status_code=303)
