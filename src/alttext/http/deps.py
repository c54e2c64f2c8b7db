"""Route dependencies: the services container and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from alttext.accounts.service import Principal, authenticate
from alttext.errors import RateLimited, Unauthorized
from alttext.process import Services

# Declared so the OpenAPI document names both ways to send a key; auto_error=False hands a
# missing key to current_principal, so it is our 401 problem rather than FastAPI's own error.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer at_live_…")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: at_live_…")


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


ServicesDep = Annotated[Services, Depends(get_services)]


async def current_principal(
    request: Request,
    services: ServicesDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    header_key: Annotated[str | None, Depends(_header)],
) -> Principal:
    secret = bearer.credentials if bearer else header_key
    if not secret:
        raise Unauthorized(
            "Send your API key as 'Authorization: Bearer <key>' or 'X-API-Key: <key>'."
        )
    async with services.sessions() as session:
        principal = await authenticate(session, secret.strip())
    request.state.principal = principal
    services.last_used.note(principal.key_id)
    limit = principal.rate_limit_per_minute or services.settings.rate_limit_per_minute
    decision = await services.limiter.hit(f"key:{principal.key_id}", limit, 60)
    # Read by RateLimitHeadersMiddleware, so errors carry the headers too.
    request.state.ratelimit = decision
    if not decision.allowed:
        raise RateLimited(
            f"This key may make {limit} requests a minute; retry after the given delay.",
            retry_after=decision.retry_after_s or 1,
        )
    return principal


PrincipalDep = Annotated[Principal, Depends(current_principal)]
