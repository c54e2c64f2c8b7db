"""Account-level errors, the one builder of problem documents, and the handlers that turn every
error into RFC 9457 problem+json."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

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

# FastAPI and Starlette are imported where a response is built or handlers are installed, not
# here: the account services raise these errors in CLI commands that load no web stack
# (tests/cli/test_startup.py).
if TYPE_CHECKING:
    from fastapi import FastAPI, Request
    from fastapi.exceptions import RequestValidationError
    from fastapi.responses import JSONResponse
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.responses import Response

__all__ = [
    "PROBLEM_JSON",
    "AccountRestricted",
    "AppError",
    "ClientDisconnected",
    "Forbidden",
    "HeadersTooLarge",
    "HtmlProblems",
    "IdempotencyConflict",
    "ImageFetchFailed",
    "ImageTooLarge",
    "InsufficientCredits",
    "InternalError",
    "InvalidImage",
    "InvalidRequest",
    "MethodNotAllowed",
    "NotFound",
    "RateLimited",
    "RequestTimeout",
    "RequestTooLarge",
    "ServiceUnavailable",
    "Unauthorized",
    "UnsupportedMediaType",
    "UpstreamError",
    "UpstreamTimeout",
    "UpstreamUnavailable",
    "install_error_handlers",
    "log_unexpected",
    "problem_fields",
    "problem_response",
    "request_id_of",
]

log = logging.getLogger("alttext.errors")
ERROR_TYPE_BASE = "https://alttext.dev/errors/"
PROBLEM_JSON = "application/problem+json"
INTERNAL_DETAIL = "Something went wrong on our side. Quote the request id if you contact us."


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


class MethodNotAllowed(AppError):
    code = "method_not_allowed"
    status = 405
    title = "Method not allowed"


class AccountRestricted(Forbidden):
    code = "account_restricted"
    title = "Processing is restricted for this account"


class InsufficientCredits(AppError):
    code = "insufficient_credits"
    status = 402
    title = "Insufficient credits"


class RequestTimeout(AppError):
    """The client stopped sending the request body (ALTTEXT_BODY_READ_TIMEOUT_S)."""

    code = "request_timeout"
    status = 408
    title = "Request timeout"


class RequestTooLarge(ImageTooLarge):
    """The body itself is over its cap (its image usually is): same code, its own title."""

    title = "Request too large"


class HeadersTooLarge(AppError):
    """The request line and headers are over ALTTEXT_MAX_HEADER_BYTES."""

    code = "headers_too_large"
    status = 431
    title = "Request headers too large"


class RateLimited(AppError):
    code = "rate_limited"
    status = 429
    title = "Too many requests"


class IdempotencyConflict(AppError):
    code = "idempotency_conflict"
    status = 409
    title = "Idempotency key reused with a different request"


class ClientDisconnected(AppError):
    """The client closed the connection before the answer was ready (nobody reads this)."""

    code = "client_disconnected"
    status = 499  # nginx's "client closed request": shows up so in the access log
    title = "Client closed the request"


class InternalError(AppError):
    """An unexpected failure, as the client sees it (the base's code: ``internal_error``)."""


class ServiceUnavailable(AppError):
    code = "service_unavailable"
    status = 503
    title = "Service unavailable"


def request_id_of(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def problem_fields(exc: AppError, request_id: str | None) -> dict[str, Any]:
    """The RFC 9457 members for ``exc``: the one place a problem document is built.

    Rendered as problem+json by ``problem_response``, stored for idempotent replays, embedded in
    batch items; an HTML error page renders the same fields.
    """
    fields: dict[str, Any] = {
        "type": ERROR_TYPE_BASE + exc.code,
        "title": exc.title,
        "status": exc.http_status,
        "detail": exc.detail,
        "code": exc.code,
        "request_id": request_id,
    }
    if exc.errors:
        fields["errors"] = exc.errors
    return fields


def problem_response(
    exc: AppError, request_id: str | None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    """``exc`` as an ``application/problem+json`` response, with ``Retry-After`` when it has one."""
    from fastapi.responses import JSONResponse

    all_headers = dict(headers or {})
    if exc.retry_after is not None:
        all_headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
    return JSONResponse(
        problem_fields(exc, request_id),
        status_code=exc.http_status,
        headers=all_headers or None,
        media_type=PROBLEM_JSON,
    )


def log_unexpected(exc: BaseException, request_id: str | None) -> None:
    # The exception's text may hold user input, so the log line carries its type and traceback
    # (JsonFormatter), never a message of ours quoting it; the client sees neither.
    log.error(
        "unhandled error",
        extra={"request_id": request_id, "error_type": type(exc).__name__},
        exc_info=exc,
    )


def _validation_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    out = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body",)]
        # Never echo the input: it may be a base64 image or a secret.
        out.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid")})
    return out


def _from_http_exception(exc: StarletteHTTPException) -> AppError:
    """Starlette's and FastAPI's own HTTP errors (404, 405, body parsing) as our errors."""
    detail = str(exc.detail)
    known: dict[int, type[AppError]] = {
        401: Unauthorized,
        403: Forbidden,
        404: NotFound,
        405: MethodNotAllowed,
        408: RequestTimeout,
        413: RequestTooLarge,
        431: HeadersTooLarge,
    }
    if exc.status_code in known:
        return known[exc.status_code](detail)
    if exc.status_code < 500:
        return InvalidRequest(detail, status=exc.status_code)
    return InternalError(detail, status=exc.status_code)


def _body_error(exc: BaseException | None) -> AppError | None:
    """Our error for one raised while a body was read; None for anything else."""
    from starlette.requests import ClientDisconnect

    if isinstance(exc, AppError):
        return exc
    if isinstance(exc, ClientDisconnect):
        # Starlette's, when the connection closes mid-body. Not a failure of ours: the access
        # log shows 499, and RequestGuard logs the disconnect.
        return ClientDisconnected("The client disconnected before sending the whole body.")
    return None


class HtmlProblems(Protocol):
    """How a surface with pages shows an error to a browser (``alttext.web.security``): the
    same problem fields, as HTML. The API's paths always answer problem+json."""

    def wants_html(self, request: Request) -> bool: ...

    def render(
        self, request: Request, fields: Mapping[str, Any], headers: Mapping[str, str] | None
    ) -> Response: ...


def is_database_outage(exc: BaseException) -> bool:
    """The database could not be reached or stopped answering (as opposed to a statement that
    is wrong): the driver's connection errors, a connection dropped in the middle of a
    statement (which SQLAlchemy reports as a plain DBAPIError with ``connection_invalidated``),
    a pool that had no connection to give in time, and the driver's own connect and statement
    timeouts (asyncpg raises the builtin TimeoutError, unwrapped: on the request path nothing
    else lets one escape, as fetches and model calls turn theirs into problems)."""
    if isinstance(
        exc, OperationalError | InterfaceError | PoolTimeout | ConnectionError | TimeoutError
    ):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


def install_error_handlers(app: FastAPI, html: HtmlProblems | None = None) -> None:
    from fastapi.exceptions import RequestValidationError
    from starlette.exceptions import HTTPException as StarletteHTTPException
    from starlette.requests import ClientDisconnect

    def answer(
        request: Request, exc: AppError, headers: Mapping[str, str] | None = None
    ) -> Response:
        if html is not None and html.wants_html(request):
            all_headers = dict(headers or {})
            if exc.retry_after is not None:
                all_headers["Retry-After"] = str(max(1, int(exc.retry_after + 0.999)))
            return html.render(request, problem_fields(exc, request_id_of(request)), all_headers)
        return problem_response(exc, request_id_of(request), headers=headers)

    async def app_error(request: Request, exc: Exception) -> Response:
        own = _body_error(exc)
        assert own is not None
        return answer(request, own)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        problem = InvalidRequest(
            "The request has invalid or missing fields.", errors=_validation_errors(exc)
        )
        return answer(request, problem)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        own = _body_error(exc.__cause__)
        if own is not None:
            # FastAPI turns any error raised while it reads a body into a bare 400 "error
            # parsing the body"; ours (the body cap, JSON limits, the read timeout, a client
            # that left) keep their own status and detail.
            return answer(request, own)
        return answer(request, _from_http_exception(exc), headers=exc.headers)

    async def database_down(request: Request, exc: Exception) -> Response:
        if not is_database_outage(exc):
            return await unexpected(request, exc)  # a DBAPIError that is our bug: 500
        # The transaction was rolled back: nothing is half-booked, and a retry is safe.
        log.error(
            "database unavailable",
            extra={"request_id": request_id_of(request), "error_type": type(exc).__name__},
        )
        problem = ServiceUnavailable(
            "The database is unavailable; nothing was charged. Retry shortly.", retry_after=5
        )
        return answer(request, problem)

    async def unexpected(request: Request, exc: Exception) -> Response:
        # Starlette runs this handler in its outermost middleware, outside ours, and re-raises
        # afterwards. alttext.http.middleware.ErrorBoundary answers unexpected errors inside our
        # middleware first; this is the last resort for a failure in the middleware itself.
        log_unexpected(exc, request_id_of(request))
        return answer(request, InternalError(INTERNAL_DETAIL))

    app.add_exception_handler(AppError, app_error)
    app.add_exception_handler(ClientDisconnect, app_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(DBAPIError, database_down)
    app.add_exception_handler(PoolTimeout, database_down)
    app.add_exception_handler(ConnectionError, database_down)
    app.add_exception_handler(TimeoutError, database_down)
    app.add_exception_handler(Exception, unexpected)
