"""``/dashboard`` (balance, 30 days of usage, recent requests) and ``/dashboard/keys``.

A signed-in customer can always make a new key here, so a lost or revoked key never locks
anyone out; revoking asks for a confirmation first (a second form, so it works without script).
"""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from alttext.accounts import service as accounts
from alttext.accounts.models import Account
from alttext.db import transaction
from alttext.errors import InvalidRequest, NotFound
from alttext.http.deps import ServicesDep
from alttext.usage.recent import recent_events
from alttext.usage.service import aggregate
from alttext.web import chart
from alttext.web.forms import read_form
from alttext.web.session import User
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)
MAX_KEY_NAME = 100


async def balance(services: Any, account_id: str) -> int:
    async with services.sessions() as session:
        account = await session.get(Account, account_id)
    return int(account.credits_balance) if account else 0


@router.get("/dashboard", response_class=HTMLResponse)
async def overview(request: Request, services: ServicesDep, user: User) -> Response:
    today = datetime.now(UTC).date()
    first = today - timedelta(days=chart.DAYS - 1)
    async with services.sessions() as session:
        rows = await aggregate(
            session,
            user.account.id,
            start=datetime.combine(first, time.min, UTC),
            end=datetime.combine(today + timedelta(days=1), time.min, UTC),
            granularity="day",
        )
        recent = await recent_events(session, user.account.id, limit=20)
        keys = await accounts.list_keys(session, user.account.id)
    usage = chart.build(chart.days_from_rows(rows, today))
    context = {
        "active": "overview",
        "balance": user.account.credits_balance,
        "chart": usage,
        "recent": recent,
        "key_names": {k.id: f"{k.name or 'unnamed'} ({k.prefix}…)" for k in keys},
        "active_keys": sum(1 for k in keys if k.revoked_at is None),
    }
    return render(request, services, "overview.html", context)


async def _keys_page(
    request: Request,
    services: Any,
    user: Any,
    *,
    created: tuple[Any, str] | None = None,
    confirm: str | None = None,
    errors: dict[str, str] | None = None,
    status_code: int = 200,
) -> Response:
    async with services.sessions() as session:
        keys = await accounts.list_keys(session, user.account.id)
    keys.sort(key=lambda k: (k.revoked_at is not None, k.created_at), reverse=False)
    confirming = next((k for k in keys if k.id == confirm and k.revoked_at is None), None)
    context = {
        "active": "keys",
        "keys": keys,
        "created": created,
        "confirming": confirming,
        "errors": errors or {},
    }
    return render(request, services, "keys.html", context, status_code=status_code)


@router.get("/dashboard/keys", response_class=HTMLResponse)
async def keys_page(
    request: Request, services: ServicesDep, user: User, revoke: str | None = None
) -> Response:
    return await _keys_page(request, services, user, confirm=revoke)


@router.post("/dashboard/keys", response_class=HTMLResponse)
async def create_key(request: Request, services: ServicesDep, user: User) -> Response:
    form = await read_form(request, services)
    name = form.get("name").strip()
    if len(name) > MAX_KEY_NAME:
        errors = {"name": f"Use at most {MAX_KEY_NAME} characters for the key name."}
        return await _keys_page(request, services, user, errors=errors, status_code=422)
    try:
        async with transaction(services.sessions) as session:
            key, secret = await accounts.create_key(session, user.account.id, name=name or None)
    except InvalidRequest as exc:
        return await _keys_page(
            request, services, user, errors={"name": exc.detail}, status_code=422
        )
    return await _keys_page(request, services, user, created=(key, secret))


@router.post("/dashboard/keys/{key_id}/revoke")
async def revoke_key(key_id: str, request: Request, services: ServicesDep, user: User) -> Response:
    await read_form(request, services)
    try:
        async with transaction(services.sessions) as session:
            # The dashboard may revoke the last key: a new one is one click away here.
            await accounts.revoke_key(session, key_id, account_id=user.account.id, allow_last=True)
    except NotFound:
        raise NotFound("No such key in your account.") from None
    return RedirectResponse("/dashboard/keys?status=key_revoked", status_code=303)
