"""Sign-up and the data-subject rights: export, rectify, object, restrict, erase.

Thin routes over the services in this package; each right leaves an audit event.
"""

from __future__ import annotations

import hashlib
import hmac
import json

from fastapi import APIRouter, Request, Response

from alttext.accounts.models import Account
from alttext.accounts.service import Principal
from alttext.api.openapi import problems
from alttext.api.routes import ResourceRoute
from alttext.db import iso_utc, transaction
from alttext.errors import RateLimited
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.privacy import erasure, rights, signup
from alttext.privacy.audit import record
from alttext.privacy.export import export_account
from alttext.privacy.schemas import (
    AccountPatch,
    AccountState,
    EraseIn,
    EraseOut,
    FirstKey,
    RestrictionOut,
    SignupAccepted,
    SignupIn,
    TokenIn,
    Verified,
)
from alttext.process import Services

router = APIRouter(prefix="/v1", route_class=ResourceRoute)
SIGNUPS_PER_HOUR = 10
VERIFICATIONS_PER_HOUR = 30


async def _limit_by_ip(request: Request, services: Services, door: str, per_hour: int) -> None:
    """Per client address, without keeping it: the limiter key is a keyed hash of the IP."""
    ip = request.client.host if request.client else "unknown"
    digest = hmac.new(
        services.settings.secret_key.encode(), ip.encode(), hashlib.sha256
    ).hexdigest()[:32]
    decision = await services.limiter.hit(f"{door}:{digest}", per_hour, 3600)
    if not decision.allowed:
        raise RateLimited(
            f"At most {per_hour} attempts an hour from one address; retry later.",
            retry_after=decision.retry_after_s or 60,
        )


def _state(account: Account, *, email_change_pending: bool = False) -> AccountState:
    return AccountState(
        id=account.id,
        email=account.email,
        name=account.name,
        status=account.status,
        history=account.history_opt_in,
        product_email=account.product_email_opt_in,
        restricted=account.restricted_at is not None,
        restricted_at=iso_utc(account.restricted_at),
        email_verified_at=iso_utc(account.email_verified_at),
        email_change_pending=email_change_pending,
    )


@router.post(
    "/signup",
    status_code=202,
    response_model=SignupAccepted,
    tags=["account"],
    summary="Sign up (consent to terms and privacy policy, 18+); a confirmation link is mailed",
    responses=problems(429),
)
async def sign_up(body: SignupIn, request: Request, services: ServicesDep) -> SignupAccepted:
    await _limit_by_ip(request, services, "signup", SIGNUPS_PER_HOUR)
    await signup.sign_up(
        services.sessions,
        services.settings,
        services.mailer,
        signup.SignupRequest(email=body.email, name=body.name, product_email=body.product_email),
    )
    return SignupAccepted()


@router.post(
    "/signup/verify",
    status_code=201,
    response_model=Verified,
    tags=["account"],
    summary="Confirm the address: the account opens and its first API key is shown once",
    responses=problems(400, 429, meanings={400: "The link is invalid, used or expired"}),
)
async def verify_signup(body: TokenIn, request: Request, services: ServicesDep) -> Verified:
    await _limit_by_ip(request, services, "verify", VERIFICATIONS_PER_HOUR)
    done = await signup.verify(services.sessions, services.settings, body.token)
    return Verified(
        account_id=done.account_id,
        api_key=FirstKey(id=done.key.id, secret=done.secret, prefix=done.key.prefix + "…"),
    )


@router.get(
    "/account/export",
    tags=["account"],
    summary="Everything held about your account, as one JSON file (GDPR Art. 15 and 20)",
    responses={200: {"content": {"application/json": {}}}},
)
async def export_account_data(services: ServicesDep, principal: PrincipalDep) -> Response:
    async with transaction(services.sessions) as session:
        # Recorded first, so the export shows its own request too.
        await record(session, principal.account_id, "export", actor="account")
        document = await export_account(session, principal.account_id)
    filename = f"alttext-export-{principal.account_id}.json"
    return Response(
        content=json.dumps(document, ensure_ascii=False, indent=2),
        media_type="application/json",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


@router.patch(
    "/account",
    response_model=AccountState,
    tags=["account"],
    summary="Correct your name or address; opt in or out of history and product e-mail",
    description="An address change takes effect only once the new address is confirmed "
    "(POST /v1/account/email/confirm with the token mailed to it).",
)
async def update_account(
    body: AccountPatch, services: ServicesDep, principal: PrincipalDep
) -> AccountState:
    given = body.model_fields_set
    changes = rights.AccountChanges(
        name=body.name,
        name_given="name" in given,
        email=body.email,
        history=body.history,
        product_email=body.product_email,
    )
    result = await rights.update_account(
        services.sessions,
        services.settings,
        services.mailer,
        principal.account_id,
        changes,
        actor="account",
    )
    return _state(result.account, email_change_pending=result.email_change_pending)


@router.post(
    "/account/email/confirm",
    response_model=AccountState,
    tags=["account"],
    summary="Apply an address change with the token mailed to the new address",
    responses=problems(
        400,
        409,
        meanings={
            400: "The link is invalid, used or expired",
            409: "The address was taken by another account meanwhile",
        },
    ),
)
async def confirm_email_change(
    body: TokenIn, services: ServicesDep, principal: PrincipalDep
) -> AccountState:
    account = await rights.confirm_email_change(
        services.sessions, principal.account_id, body.token, actor="account"
    )
    return _state(account)


async def _restriction(services: Services, principal: Principal, on: bool) -> RestrictionOut:
    at = await rights.set_restricted(services.sessions, principal.account_id, on, actor="account")
    return RestrictionOut(restricted=at is not None, restricted_at=iso_utc(at))


@router.post(
    "/account/restrict",
    response_model=RestrictionOut,
    tags=["account"],
    summary="Restrict processing (GDPR Art. 18): generation answers 403 until lifted",
)
async def restrict_processing(services: ServicesDep, principal: PrincipalDep) -> RestrictionOut:
    return await _restriction(services, principal, True)


@router.delete(
    "/account/restrict",
    response_model=RestrictionOut,
    tags=["account"],
    summary="Lift the restriction of processing",
)
async def lift_restriction(services: ServicesDep, principal: PrincipalDep) -> RestrictionOut:
    return await _restriction(services, principal, False)


@router.delete(
    "/account",
    response_model=EraseOut,
    tags=["account"],
    summary="Erase the account (GDPR Art. 17); send its e-mail address as confirmation",
    responses=problems(503, meanings={503: "Stripe could not delete the customer; no change"}),
    description="Keys stop working at once; the Stripe customer is deleted; only the "
    "accounting records the law requires are kept, under an anonymous id (docs/privacy.md).",
)
async def erase_account(body: EraseIn, services: ServicesDep, principal: PrincipalDep) -> EraseOut:
    summary = await erasure.erase_account(
        services.sessions,
        services.settings,
        principal.account_id,
        confirm=body.confirm,
        actor="account",
        cache=services.result_cache,
    )
    return EraseOut(erased=True, kept=summary.kept)
