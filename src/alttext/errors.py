"""Account-level errors and the one handler that turns every error into problem+json."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from alttext.describe.errors import (
    AppError,
    ImageFetchFailed,
    ImageTooLarge,
    InvalidImage,
    InvalidRequest,
    UnsupportedMediaType,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

__all__ = [
    "AccountRestricted",
    "AppError",
    "Forbidden",
    "IdempotencyConflict",
    "ImageFetchFailed",
    "ImageTooLarge",
    "InsufficientCredits",
    "InvalidImage",
    "InvalidRequest",
    "NotFound",
    "RateLimited",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "install_error_handlers",
    "problem_body",
    "problem_response",
]

log = logging.getLogger("alttext.errors")
ERROR_TYPE_BASE = "https://alttext.dev/errors/"
PROBLEM_JSON = "application/problem+json"


class Unauthorized(AppError):
    code = "unauthorized"
    status = 401
    title = "Unauthorized"


class Forbidden(AppError):
    code = "forbidden"
    status = 403
    title = "Forbidden"


class NotFound(AppError):
    code = "not_found"
    status = 404
    title = "Not found"


class AccountRestricted(Forbidden):
    code = "account_restricted"
    title = "Processing is restricted for this account"


class InsufficientCredits(AppError):
    code = "insufficient_credits"
    status = 402
    title = "Insufficient credits"


class RateLimited(AppError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class IdempotencyConflict(AppError):
    code = "idempotency_conflict"
    status = 409
    title = "Idempotency key reused with a different request"


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_body(exc: AppError, request: Request) -> dict[str, Any]:
    """The problem document for an AppError (also stored for idempotent replays)."""
    body: dict[str, Any] = {
        "type": ERROR_TYPE_BASE + exc.code,
        "title": exc.title,
        "status": exc.http_status,
        "detail": exc.detail,
        "code": exc.code,
        "request_id": _request_id(request),
    }
    if exc.errors:
        body["errors"] = exc.errors
    return body


def problem_response(
    request: Request,
    *,
    status: int,
    code: str,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": ERROR_TYPE_BASE + code,
        "title": title,
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": _request_id(request),
    }
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_JSON)


def _retry_after_header(seconds: float | None) -> dict[str, str]:
    if seconds is None:
        return {}
    return {"Retry-After": str(max(1, int(seconds + 0.999)))}


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        # Never echo the input: it may be a base64 image or a secret.
        out.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid")})
    return out


def install_error_handlers(app: FastAPI) -> None:
    async def app_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, AppError)
        headers = _retry_after_header(exc.retry_after)
        return problem_response(
            request,
            status=exc.http_status,
            code=exc.code,
            title=exc.title,
            detail=exc.detail,
            errors=exc.errors,
            headers=headers or None,
        )

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return problem_response(
            request,
            status=422,
            code="invalid_request",
            title="Invalid request",
            detail="The request has invalid or missing fields.",
            errors=_validation_errors(exc),
        )

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = {
            401: "unauthorized",
            403: "forbidden",
            404: "not_found",
            405: "method_not_allowed",
            413: "request_too_large",
        }.get(exc.status_code, "invalid_request")
        return problem_response(
            request,
            status=exc.status_code,
            code=code,
            title=str(exc.detail) if exc.status_code != 404 else "Not found",
            detail=str(exc.detail),
            headers=dict(exc.headers) if exc.headers else None,
        )

    async def database_down(request: Request, exc: Exception) -> JSONResponse:
        # The transaction was rolled back: nothing is half-booked, and a retry is safe.
        log.error(
            "database unavailable",
            extra={"request_id": _request_id(request), "error_type": type(exc).__name__},
        )
        return problem_response(
            request,
            status=503,
            code="service_unavailable",
            title="Service unavailable",
            detail="The database is unavailable; nothing was charged. Retry shortly.",
            headers={"Retry-After": "5"},
        )

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        # Logged with the request id; the exception text may not hold user data (house rule),
        # but only its type goes into the response.
        log.error(
            "unhandled error",
            extra={"request_id": _request_id(request), "error_type": type(exc).__name__},
            exc_info=exc,
        )
        return problem_response(
            request,
            status=500,
            code="internal_error",
            title="Internal server error",
            detail="Something went wrong on our side. Quote the request id if you contact us.",
        )

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(OperationalError, database_down)
    app.add_exception_handler(InterfaceError, database_down)
    app.add_exception_handler(ConnectionError, database_down)
    app.add_exception_handler(Exception, unexpected)
