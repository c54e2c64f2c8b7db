"""``/v1/account``, ``/v1/keys`` and ``/v1/usage``."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query, Response

from alttext.accounts import service as accounts
from alttext.accounts.models import Account, ApiKey
from alttext.api.openapi import id_schema, problems
from alttext.api.routes import ResourceRoute
from alttext.api.schemas import (
    AccountOut,
    KeyCreate,
    KeyCreated,
    KeyList,
    KeyOut,
    UsagePeriod,
    UsageReport,
)
from alttext.db import iso_utc, transaction
from alttext.errors import InvalidRequest, NotFound
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.usage.service import aggregate

router = APIRouter(prefix="/v1", route_class=ResourceRoute)
MAX_USAGE_DAYS = 731


def _key_out(key: ApiKey) -> KeyOut:
    return KeyOut(
        id=key.id,
        name=key.name,
        prefix=key.prefix + "…",
        created_at=iso_utc(key.created_at),
        last_used_at=iso_utc(key.last_used_at),
        revoked_at=iso_utc(key.revoked_at),
    )


@router.get(
    "/account",
    response_model=AccountOut,
    tags=["account"],
    summary="Your account",
    responses=problems(404, meanings={404: "The account was erased meanwhile"}),
)
async def get_account(services: ServicesDep, principal: PrincipalDep) -> AccountOut:
    async with services.sessions() as session:
        account = await session.get(Account, principal.account_id)
    if account is None:
        raise NotFound("The account no longer exists.")
    return AccountOut(
        id=account.id,
        email=account.email,
        name=account.name,
        status=account.status,
        restricted=account.restricted_at is not None,
        credits_remaining=account.credits_balance,
        created_at=iso_utc(account.created_at),
        settings={
            "rate_limit_per_minute": account.rate_limit_per_minute
            or services.settings.rate_limit_per_minute,
            "max_concurrent": services.settings.max_concurrent_per_account,
            "history": account.history_opt_in,
            "product_email": account.product_email_opt_in,
        },
    )


@router.get("/keys", response_model=KeyList, tags=["keys"], summary="List API keys (no secrets)")
async def list_keys(services: ServicesDep, principal: PrincipalDep) -> KeyList:
    async with services.sessions() as session:
        keys = await accounts.list_keys(session, principal.account_id)
    return KeyList(data=[_key_out(k) for k in keys])


@router.post(
    "/keys",
    response_model=KeyCreated,
    status_code=201,
    tags=["keys"],
    summary="Create an API key (the secret is shown once)",
)
async def create_key(
    services: ServicesDep, principal: PrincipalDep, body: KeyCreate | None = None
) -> KeyCreated:
    async with transaction(services.sessions) as session:
        key, secret = await accounts.create_key(
            session, principal.account_id, name=body.name if body else None
        )
    return KeyCreated(**_key_out(key).model_dump(), secret=secret)


@router.delete(
    "/keys/{key_id}",
    status_code=204,
    tags=["keys"],
    summary="Revoke an API key at once",
    description="Revoking the account's last active key needs `?allow_last=true`: without a "
    "key the API cannot be used until a new one is made (in the dashboard, after logging in).",
    responses=problems(
        404,
        422,
        meanings={
            404: "No key with this id in your account",
            422: "Invalid parameters, or the last active key without allow_last=true",
        },
    ),
)
async def revoke_key(
    key_id: Annotated[str, Path(json_schema_extra=id_schema("key"))],
    services: ServicesDep,
    principal: PrincipalDep,
    allow_last: Annotated[
        bool, Query(description="Revoke the key even if it is the account's last active one.")
    ] = False,
) -> Response:
    async with transaction(services.sessions) as session:
        await accounts.revoke_key(
            session, key_id, account_id=principal.account_id, allow_last=allow_last
        )
    return Response(status_code=204)


_DAY = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
# What _parse_day takes, as the document states it (a 422 otherwise).
_DAY_SCHEMA = {"format": "date", "pattern": _DAY.pattern}


def _parse_day(value: str | None, name: str) -> date | None:
    """A calendar date written YYYY-MM-DD (nothing else: not a week date, not a timestamp)."""
    if value is None:
        return None
    try:
        if not _DAY.match(value):
            raise ValueError(value)
        return date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidRequest(f"'{name}' must be a date such as 2026-01-31.") from exc


@router.get(
    "/usage",
    response_model=UsageReport,
    tags=["usage"],
    summary="Usage by period, model",
    description=f"`from` must not be after `to`, nor more than {MAX_USAGE_DAYS} days before it "
    "(422 otherwise).",
)
async def get_usage(
    services: ServicesDep,
    principal: PrincipalDep,
    start: Annotated[
        str | None,
        Query(
            alias="from",
            description="First day, inclusive (YYYY-MM-DD, UTC)",
            json_schema_extra=_DAY_SCHEMA,
        ),
    ] = None,
    end: Annotated[
        str | None,
        Query(
            alias="to",
            description="Last day, inclusive (YYYY-MM-DD, UTC)",
            json_schema_extra=_DAY_SCHEMA,
        ),
    ] = None,
    granularity: Literal["day", "month"] = "day",
) -> UsageReport:
    today = datetime.now(UTC).date()
    last = _parse_day(end, "to") or today
    # Thirty days by default, or fewer when `to` is one of the first days of the calendar.
    first = _parse_day(start, "from") or last - timedelta(days=min(29, (last - date.min).days))
    if first > last:
        raise InvalidRequest("'from' must not be after 'to'.")
    if (last - first).days > MAX_USAGE_DAYS:
        raise InvalidRequest(f"Ask for at most {MAX_USAGE_DAYS} days at once.")
    lo = datetime.combine(first, time.min, UTC)
    # The end is exclusive: the next midnight, or the calendar's last instant on its last day.
    hi = (
        datetime.combine(last + timedelta(days=1), time.min, UTC)
        if last < date.max
        else datetime.max.replace(tzinfo=UTC)
    )
    async with services.sessions() as session:
        rows = await aggregate(
            session, principal.account_id, start=lo, end=hi, granularity=granularity
        )
    data = [UsagePeriod(**row.__dict__) for row in rows]
    totals = UsagePeriod(
        period=f"{first.isoformat()}/{last.isoformat()}",
        model=None,
        requests=sum(r.requests for r in data),
        succeeded=sum(r.succeeded for r in data),
        failed=sum(r.failed for r in data),
        decorative=sum(r.decorative for r in data),
        credits=sum(r.credits for r in data),
        input_tokens=sum(r.input_tokens for r in data),
        output_tokens=sum(r.output_tokens for r in data),
        upstream_cost_usd=round(sum(r.upstream_cost_usd for r in data), 8),
    )
    return UsageReport(
        start=first.isoformat(),
        end=last.isoformat(),
        granularity=granularity,
        totals=totals,
        data=data,
    )
