"""What every answer carries (security headers), and errors as pages for browsers.

``SecurityHeaders`` is installed outermost, so every response gets the headers, the guard's and
the error boundary's answers included. The Content-Security-Policy allows our own origin only:
no inline script or style anywhere (the usage chart included), no third-party source; the one
other origin named is Stripe Checkout, as a ``form-action`` (the buy form is answered with a
redirect to it). HSTS is sent outside development.

Errors on the JSON API (``/v1/…``, ``/webhooks/…``, ``/healthz``, ``/readyz``,
``/openapi.json``) stay problem+json; elsewhere a browser gets an HTML page with the same
fields (``alttext.errors.problem_fields``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from alttext.config import Settings
from alttext.errors import INTERNAL_DETAIL, InternalError, log_unexpected, problem_fields
from alttext.web.session import LoginRequired, login_url
from alttext.web.templating import common, templates

STRIPE_CHECKOUT = "https://checkout.stripe.com"
CSP = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' blob:",
        "connect-src 'self'",
        "font-src 'self'",
        "manifest-src 'self'",
        "base-uri 'none'",
        "object-src 'none'",
        f"form-action 'self' {STRIPE_CHECKOUT}",
        "frame-ancestors 'none'",
    )
)
API_PREFIXES = ("/v1/", "/webhooks/")
API_PATHS = {"/v1", "/healthz", "/readyz", "/openapi.json", "/metrics"}


def security_headers(env: str) -> dict[str, str]:
    headers = {
        "Content-Security-Policy": CSP,
        "Referrer-Policy": "strict-origin-when-cross-origin",
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
    }
    if env != "development":
        headers["Strict-Transport-Security"] = "max-age=63072000; includeSubDomains"
    return headers


class SecurityHeaders:
    def __init__(self, app: ASGIApp, settings: Settings) -> None:
        self.app = app
        self.headers = security_headers(settings.env)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in self.headers.items():
                    if name not in headers:
                        headers[name] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


def is_api_path(path: str) -> bool:
    return path in API_PATHS or path.startswith(API_PREFIXES)


def wants_html(request: Request) -> bool:
    """A page, not the API, and a client that does not ask for JSON."""
    if is_api_path(request.url.path):
        return False
    accept = request.headers.get("accept", "").lower()
    return "text/html" in accept or "json" not in accept


_TITLES = {
    400: "That request did not work",
    403: "Not allowed",
    404: "Page not found",
    405: "Not allowed here",
    413: "Too large",
    429: "Too many attempts",
    500: "Something went wrong",
    503: "Temporarily unavailable",
}


def render_error(
    request: Request, fields: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Response:
    status = int(fields["status"])
    services = getattr(request.app.state, "services", None)
    context: dict[str, Any] = {}
    if services is not None:
        context = common(request, services)
    else:  # before the lifespan ran: the page still renders
        context = {"user": None, "csrf": lambda: "", "privacy_version": "", "terms_version": ""}
    context.setdefault("user", getattr(request.state, "web_user", None))
    context |= {
        "problem": dict(fields),
        "heading": _TITLES.get(status, str(fields.get("title", "Error"))),
        "status": status,
    }
    response = templates.TemplateResponse(
        request, "error.html", context, status_code=status, headers=dict(headers or {})
    )
    response.headers["Cache-Control"] = "no-store"
    return response


class HtmlProblems:
    """The ``alttext.errors`` hook: errors of pages as HTML."""

    def wants_html(self, request: Request) -> bool:
        return wants_html(request)

    def render(
        self, request: Request, fields: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> Response:
        return render_error(request, fields, headers)


class PageErrorBoundary:
    """Innermost: an unexpected error on a page becomes the HTML 500 page (logged with the
    request id); the API's errors pass on to ``alttext.http.middleware.ErrorBoundary``."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_api_path(scope["path"]):
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception as exc:
            request = Request(scope, receive)
            if started or not wants_html(request):
                raise
            request_id = scope.get("state", {}).get("request_id")
            log_unexpected(exc, request_id)
            fields = problem_fields(InternalError(INTERNAL_DETAIL), request_id)
            await render_error(request, fields)(scope, receive, send)


async def login_required(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, LoginRequired)
    return RedirectResponse(login_url(exc.next_path), status_code=303)
