"""Per-client limits of the public forms (sign-up, password reset), without keeping addresses:
the limiter key is a keyed hash of the client's IP address (or of the e-mail address)."""

from __future__ import annotations

import hashlib
import hmac
import math

from starlette.requests import Request

from alttext.process import Services

# The same door and budget as POST /v1/signup: 10 sign-ups an hour per client address.
SIGNUPS_PER_HOUR = 10
RESETS_PER_HOUR_PER_CLIENT = 5
RESETS_PER_HOUR_PER_ADDRESS = 3


def client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _digest(services: Services, value: str) -> str:
    return hmac.new(
        services.settings.secret_key.encode(), value.encode(), hashlib.sha256
    ).hexdigest()[:32]


async def minutes_to_wait(services: Services, door: str, value: str, per_hour: int) -> int | None:
    """Count one attempt; None if allowed, else the whole minutes until the next is."""
    decision = await services.limiter.hit(f"{door}:{_digest(services, value)}", per_hour, 3600)
    if decision.allowed:
        return None
    return max(1, math.ceil((decision.retry_after_s or 60) / 60))
