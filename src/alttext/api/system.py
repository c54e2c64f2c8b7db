"""Health, readiness and the model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from alttext.api.schemas import ModelOut, ModelsResponse
from alttext.describe.providers.breaker import CircuitBreakers, CircuitState
from alttext.http.deps import PrincipalDep, ServicesDep
from alttext.http.routing import ApiRoute

router = APIRouter(route_class=ApiRoute)


@router.get("/healthz", tags=["system"], summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/readyz",
    tags=["system"],
    summary="Dependencies and the data-routing policy in force",
    responses={503: {"description": "Not ready: the same document, naming the failed check"}},
)
async def readyz(services: ServicesDep) -> JSONResponse:
    checks: dict[str, Any] = {}
    ready = True
    try:
        async with services.db.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = {"status": "ok", "backend": services.db.dialect.name}
    except Exception as exc:  # readiness reports any failure instead of raising
        ready = False
        checks["database"] = {"status": "error", "error": type(exc).__name__}
    checks["limits"] = await services.limiter.status()
    checks["provider"] = {"status": "ok", **services.runtime.provider.routing_policy()}
    if services.runtime.breakers is not None:
        # Informative only: an open circuit never makes the process unready (docs/operations.md).
        checks["circuits"] = circuits(services.runtime.breakers)
    body = {"status": "ready" if ready else "not_ready", "checks": checks}
    return JSONResponse(body, status_code=200 if ready else 503)


def circuits(breakers: CircuitBreakers) -> dict[str, Any]:
    """The model circuits of this process: ``ok`` when all are closed, ``degraded`` when some
    model is paused, ``open`` when every one is (generations then answer 503 at once)."""
    snapshot = breakers.snapshot()
    closed = [c for c in snapshot if c.state is CircuitState.CLOSED]
    usable = [c for c in snapshot if c.state is not CircuitState.OPEN]
    status = "ok" if len(closed) == len(snapshot) else "degraded" if usable else "open"
    return {
        "status": status,
        "failures_to_open": breakers.config.failures,
        "cooldown_s": breakers.config.cooldown_s,
        "models": {
            c.model: {
                "state": c.state.value,
                "consecutive_failures": c.consecutive_failures,
                "probe_in_s": None if c.probe_in_s is None else round(c.probe_in_s, 1),
            }
            for c in snapshot
        },
    }


@router.get(
    "/v1/models",
    tags=["models"],
    response_model=ModelsResponse,
    summary="Models this deployment can use, with credits per image",
)
async def list_models(services: ServicesDep, _principal: PrincipalDep) -> ModelsResponse:
    infos = await services.runtime.provider.models()
    chain = services.settings.model_chain
    default = chain[0] if services.runtime.provider.name != "local" else None
    data = [
        ModelOut(
            id=info.id,
            name=info.name,
            credits_per_image=1,
            default=info.id == default or (default is None and i == 0),
            pricing={
                "prompt_usd_per_token": info.prompt_price_usd,
                "completion_usd_per_token": info.completion_price_usd,
                "image_usd": info.image_price_usd,
            },
        )
        for i, info in enumerate(infos)
    ]
    return ModelsResponse(data=data)
