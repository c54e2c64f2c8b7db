"""Public pages: the privacy policy and the terms, rendered from the code's own facts (the data
inventory, the retention schedule, the cookies, the policy versions) so they cannot drift."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from alttext.http.deps import ServicesDep
from alttext.privacy.inventory import COOKIES, data_inventory
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION
from alttext.privacy.retention import UNVERIFIED_SIGNUP_TTL, retention_schedule

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
router = APIRouter(include_in_schema=False)


def static_files() -> StaticFiles:
    return StaticFiles(directory=HERE / "static")


def _common(services: ServicesDep) -> dict[str, object]:
    settings = services.settings
    return {
        "privacy_version": PRIVACY_VERSION,
        "terms_version": TERMS_VERSION,
        "public_url": settings.public_url.rstrip("/"),
        "operator_name": settings.operator_name,
        "contact_email": settings.contact_email,
        "provider": settings.resolved_provider,
        "zdr": settings.zero_data_retention,
        "retention_days": settings.retention_days,
        "price_per_image_usd": settings.price_per_image_usd,
        "unverified_hours": int(UNVERIFIED_SIGNUP_TTL.total_seconds() // 3600),
    }


@router.get("/privacy", response_class=HTMLResponse)
async def privacy(request: Request, services: ServicesDep) -> HTMLResponse:
    context = _common(services) | {
        "inventory": data_inventory(services.settings.retention_days),
        "schedule": retention_schedule(services.settings.retention_days),
        "cookies": COOKIES,
        "active": "privacy",
    }
    return templates.TemplateResponse(request, "privacy.html", context)


@router.get("/terms", response_class=HTMLResponse)
async def terms(request: Request, services: ServicesDep) -> HTMLResponse:
    context = _common(services) | {"active": "terms"}
    return templates.TemplateResponse(request, "terms.html", context)
