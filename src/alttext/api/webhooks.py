"""``/v1/webhooks``: the signing secret of job webhooks, its rotation, and delivery attempts."""

from __future__ import annotations

import re
from typing import Annotated

from fastapi import APIRouter, Query

from alttext.api.openapi import id_schema, problems
from alttext.api.routes import ResourceRoute
from alttext.db import iso_utc, transaction
from alttext.errors import InvalidRequest
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.jobs.webhook_schemas import DeliveryList, WebhookSecretOut
from alttext.jobs.webhooks import MAX_PAGE, list_deliveries, rotate_secret, signing_keys

router = APIRouter(prefix="/v1", tags=["webhooks"], route_class=ResourceRoute)
_ATTEMPT_ID = re.compile(r"^wha_[0-9a-z]{26}$")


@router.get(
    "/webhooks/secret",
    response_model=WebhookSecretOut,
    summary="The secret that signs your job webhooks",
    description="Verify each delivery's `webhook-signature` with this secret and any "
    "Standard Webhooks library (headers `webhook-id`, `webhook-timestamp`, "
    "`webhook-signature`).",
)
async def get_webhook_secret(services: ServicesDep, principal: PrincipalDep) -> WebhookSecretOut:
    async with services.sessions() as session:
        keys = await signing_keys(session, services.settings, principal.account_id)
    return WebhookSecretOut(secret=keys.secret, rotated_at=iso_utc(keys.rotated_at))


@router.post(
    "/webhooks/secret/rotate",
    response_model=WebhookSecretOut,
    summary="Replace the webhook signing secret",
    description="Returns the new secret. For 24 hours deliveries are signed with the new and "
    "the previous secret (two `v1,` entries in `webhook-signature`), so receivers can switch "
    "without losing a delivery; rotating again within those hours retires the older one.",
)
async def rotate_webhook_secret(services: ServicesDep, principal: PrincipalDep) -> WebhookSecretOut:
    async with transaction(services.sessions) as session:
        secret = await rotate_secret(session, services.settings, principal.account_id)
        keys = await signing_keys(session, services.settings, principal.account_id)
    return WebhookSecretOut(secret=secret, rotated_at=iso_utc(keys.rotated_at))


@router.get(
    "/webhooks/deliveries",
    response_model=DeliveryList,
    summary="Webhook delivery attempts, newest first",
    description="Every attempt to deliver an event of your jobs: outcome, status, latency and "
    "time. Bodies are never stored, neither ours nor the receiver's.",
    responses=problems(400, meanings={400: "starting_after is not a delivery id"}),
)
async def list_webhook_deliveries(
    services: ServicesDep,
    principal: PrincipalDep,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    starting_after: Annotated[
        str | None,
        Query(
            description="The id of the last delivery of the previous page.",
            json_schema_extra=id_schema("wha"),
        ),
    ] = None,
) -> DeliveryList:
    if starting_after is not None and not _ATTEMPT_ID.match(starting_after):
        raise InvalidRequest("starting_after must be a delivery id (wha_…).", status=400)
    async with services.sessions() as session:
        return await list_deliveries(
            session, principal.account_id, limit=limit, starting_after=starting_after
        )
