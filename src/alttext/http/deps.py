"""Route dependencies: the services container and the authenticated caller."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import time
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from alttext.accounts.service import Principal
from alttext.errors import RateLimited, Unauthorized
from alttext.process import Services

# Declared so the OpenAPI document names both ways to send a key; auto_error=False hands a
# missing key to current_principal, so it is our 401 problem rather than FastAPI's own error.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer at_live_…")
_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="X-API-Key: at_live_…")


# Failed API authentication (a key that is malformed, unknown, revoked, or of a closed account)
# per client address: FAILED_AUTH_LIMIT in FAILED_AUTH_WINDOW_S (GCRA, so then one more every
# 10 s). Over it, the client's requests are answered 429 with Retry-After before any key is
# looked up, a valid key's too, so a guess cannot be told right from wrong (docs/api.md).
FAILED_AUTH_LIMIT = 60
FAILED_AUTH_WINDOW_S = 600.0
_MAX_BLOCKED = 10_000


def _client_address(request: Request) -> str:
    """Who is guessing: the client's IP address, an IPv6 address by its /64 (one host's)."""
    host = request.client.host if request.client else "unknown"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.IPv6Network((address, 64), strict=False))
    return host


def _blocked_clients(request: Request) -> dict[str, float]:
    """Clients over the budget, until when (monotonic seconds). Kept per process; the count
    itself is the limiter's, shared by every process with Redis."""
    state = request.app.state
    blocked: dict[str, float] | None = getattr(state, "failed_auth_blocked", None)
    if blocked is None:
        blocked = state.failed_auth_blocked = {}
    return blocked


def _too_many_failures(wait_s: float) -> RateLimited:
    return RateLimited(
        "Too many requests with an invalid API key from this address; retry after the given "
        "delay with a valid key.",
        retry_after=max(1.0, wait_s),
    )


async def _authenticate(request: Request, services: Services, secret: str) -> Principal:
    """The key's caller, or 401; 429 once this client failed too often (see FAILED_AUTH_LIMIT)."""
    client = _client_address(request)
    blocked = _blocked_clients(request)
    until = blocked.get(client)
    if until is not None:
        if until > time.monotonic():
            raise _too_many_failures(until - time.monotonic())
        del blocked[client]
    try:
        # A few seconds from memory; a revocation drops the entry at once (accounts/key_cache.py).
        return await services.key_cache.authenticate(services.sessions, secret)
    except Unauthorized:
        # The limiter's key is a keyed hash of the address, so no address reaches Redis.
        digest = hmac.new(services.settings.secret_key.encode(), client.encode(), hashlib.sha256)
        decision = await services.limiter.hit(
            f"auth-fail:{digest.hexdigest()[:32]}", FAILED_AUTH_LIMIT, FAILED_AUTH_WINDOW_S
        )
        if decision.allowed:
            raise
        wait = float(decision.retry_after_s or 1)
        if len(blocked) >= _MAX_BLOCKED:
            now = time.monotonic()
            for stale in [c for c, t in blocked.items() if t <= now] or list(blocked):
                del blocked[stale]
        blocked[client] = time.monotonic() + wait
        raise _too_many_failures(wait) from None


async def get_services(request: Request) -> Services:
    """``async`` on purpose: FastAPI runs a plain ``def`` dependency in its threadpool, a hop
    per request (and a queue of them under a burst) for one attribute read."""
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
    principal = await _authenticate(request, services, secret.strip())
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
