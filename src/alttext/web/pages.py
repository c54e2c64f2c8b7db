"""Public pages: the landing page, the API reference, the privacy policy and the terms (the last
two rendered from the code's own facts: the data inventory, the retention schedule, the cookies,
the policy versions, so they cannot drift)."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from alttext.http.deps import ServicesDep
from alttext.privacy.inventory import COOKIES, data_inventory, result_cache_inventory
from alttext.privacy.retention import UNVERIFIED_SIGNUP_TTL, retention_schedule
from alttext.web.apidocs import reference
from alttext.web.session import OptionalUser
from alttext.web.templating import render

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def landing(request: Request, services: ServicesDep, user: OptionalUser) -> HTMLResponse:
    return render(request, services, "landing.html", {"active": "home"})


@router.get("/docs", response_class=HTMLResponse)
async def api_docs(request: Request, services: ServicesDep, user: OptionalUser) -> HTMLResponse:
    ref = reference(request.app.openapi())
    return render(request, services, "docs.html", {"ref": ref, "active": "docs"})


@router.get("/privacy", response_class=HTMLResponse)
async def privacy(request: Request, services: ServicesDep, user: OptionalUser) -> HTMLResponse:
    context = {
        "inventory": data_inventory(
            services.settings.retention_days, services.settings.job_retention_days
        ),
        "schedule": retention_schedule(
            services.settings.retention_days, services.settings.job_retention_days
        ),
        "caches": [
            result_cache_inventory(
                services.settings.cache_ttl_s, redis=bool(services.settings.redis_url)
            )
        ],
        "cookies": COOKIES,
        "active": "privacy",
        "unverified_hours": int(UNVERIFIED_SIGNUP_TTL.total_seconds() // 3600),
    }
    return render(request, services, "privacy.html", context)


@router.get("/terms", response_class=HTMLResponse)
async def terms(request: Request, services: ServicesDep, user: OptionalUser) -> HTMLResponse:
    context = {
        "active": "terms",
        "unverified_hours": int(UNVERIFIED_SIGNUP_TTL.total_seconds() // 3600),
    }
    return render(request, services, "terms.html", context)
