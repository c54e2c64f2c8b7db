"""Rendering pages: one Jinja2 environment, the context every page shares, and the headers of
pages that show an account (never cached)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi.templating import Jinja2Templates
from starlette.requests import Request
from starlette.responses import HTMLResponse

from alttext.billing.checkout import format_price
from alttext.privacy.policy_versions import PRIVACY_VERSION, TERMS_VERSION
from alttext.process import Services
from alttext.web.messages import status_message
from alttext.web.session import CSRF_FIELD, csrf_token, set_new_csrf_cookie

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
templates.env.globals["CSRF_FIELD"] = CSRF_FIELD


def _used_csrf(request: Request, services: Services) -> str:
    request.state.csrf_used = True
    return csrf_token(request, services)


def common(request: Request, services: Services) -> dict[str, Any]:
    settings = services.settings
    return {
        "user": getattr(request.state, "web_user", None),
        "flash": status_message(request),
        "csrf": lambda: _used_csrf(request, services),
        "privacy_version": PRIVACY_VERSION,
        "terms_version": TERMS_VERSION,
        "public_url": settings.public_url.rstrip("/"),
        "operator_name": settings.operator_name,
        "contact_email": settings.contact_email,
        "provider": settings.resolved_provider,
        "zdr": settings.zero_data_retention,
        "retention_days": settings.retention_days,
        "price_per_image_usd": settings.price_per_image_usd,
        "price": format_price(settings.price_per_image_usd),
        "min_purchase": f"${settings.min_purchase_usd:,.0f}"
        if float(settings.min_purchase_usd).is_integer()
        else f"${settings.min_purchase_usd:,.2f}",
        "free_credits": settings.free_credits,
    }


def render(
    request: Request,
    services: Services,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status_code: int = 200,
    headers: dict[str, str] | None = None,
) -> HTMLResponse:
    page = common(request, services) | (context or {})
    response = templates.TemplateResponse(
        request, template, page, status_code=status_code, headers=headers
    )
    set_new_csrf_cookie(request, response, services)
    if page["user"] is not None or getattr(request.state, "csrf_used", False):
        # Pages that show an account or carry a form token: never from a cache (the back
        # button after logging out shows nothing of the account).
        response.headers["Cache-Control"] = "no-store"
    return response
