"""Exceptions: every problem+json answer of the API becomes an ``AltTextError`` subclass.

The class is chosen by the stable error ``code`` first, then by the HTTP status, so new codes of
a known family still land in the right class::

    try:
        client.alt_text.create("photo.jpg")
    except InsufficientCreditsError:
        ...  # buy credits
    except AltTextError as exc:
        print(exc.status, exc.code, exc.detail, exc.request_id)
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from alttext_client.types import JobInfo

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "AltTextError",
    "AuthenticationError",
    "ConflictError",
    "IdempotencyConflictError",
    "ImageFetchError",
    "ImageTooLargeError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidImageError",
    "InvalidRequestError",
    "JobTimeoutError",
    "NotFoundError",
    "PermissionDeniedError",
    "RateLimitError",
    "ServiceUnavailableError",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
]


class AltTextError(Exception):
    """Base of every error this package raises.

    ``status`` is the HTTP status (None when no response arrived); ``code`` the API's stable
    error code (``insufficient_credits``, ``rate_limited``, …); ``request_id`` the id to quote
    to support; ``errors`` the per-field problems of a validation failure.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        title: str | None = None,
        detail: str | None = None,
        request_id: str | None = None,
        errors: list[dict[str, Any]] | None = None,
        type: str | None = None,
        retry_after: float | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail if detail is not None else message
        self.request_id = request_id
        self.errors = errors or []
        self.type = type
        self.retry_after = retry_after
        self.headers: dict[str, str] = dict(headers or {})

    def __str__(self) -> str:
        parts = [self.message]
        if self.status is not None:
            parts.insert(0, f"{self.status} {self.code or ''}".rstrip() + ":")
        if self.request_id:
            parts.append(f"(request {self.request_id})")
        return " ".join(parts)


class APIConnectionError(AltTextError):
    """The service could not be reached, or the connection broke before an answer."""


class APITimeoutError(APIConnectionError):
    """No answer within ``timeout`` seconds."""


class InvalidRequestError(AltTextError):
    """400, 405, 408, 413, 415, 422, 431: the request cannot be served as sent."""


class InvalidImageError(InvalidRequestError):
    """``invalid_image``: the bytes are not a usable image."""


class ImageFetchError(InvalidRequestError):
    """``image_fetch_failed``: the service could not fetch ``image_url``, or refused it."""


class ImageTooLargeError(InvalidRequestError):
    """``image_too_large`` (413)."""


class UnsupportedMediaTypeError(InvalidRequestError):
    """``unsupported_media_type`` (415)."""


class AuthenticationError(AltTextError):
    """401: missing, malformed, unknown or revoked API key."""


class InsufficientCreditsError(AltTextError):
    """402: the balance is too low. Nothing was charged."""


class PermissionDeniedError(AltTextError):
    """403: forbidden, e.g. processing is restricted for the account."""


class NotFoundError(AltTextError):
    """404."""


class ConflictError(AltTextError):
    """409."""


class IdempotencyConflictError(ConflictError):
    """``idempotency_conflict``: the Idempotency-Key was used with a different request."""


class RateLimitError(AltTextError):
    """429 ``rate_limited``: ``retry_after`` says how many seconds to wait."""


class InternalServerError(AltTextError):
    """500 and other 5xx answers without a more specific class."""


class ServiceUnavailableError(InternalServerError):
    """503 ``service_unavailable``: the service itself (e.g. its database) is unavailable."""


class UpstreamError(InternalServerError):
    """502/503/504 from the model provider behind the service. Never charged."""


class UpstreamUnavailableError(UpstreamError):
    """503 ``upstream_unavailable`` (with ``retry_after``)."""


class UpstreamTimeoutError(UpstreamError):
    """504 ``upstream_timeout``."""


class JobTimeoutError(AltTextError, TimeoutError):
    """``Job.wait(timeout=...)`` ran out of time; ``job`` is the job as last seen (still
    running, queued or paused). The job itself goes on: wait again, or cancel it."""

    def __init__(self, message: str, *, job: JobInfo) -> None:
        super().__init__(message)
        self.job = job


_BY_CODE: dict[str, type[AltTextError]] = {
    "invalid_request": InvalidRequestError,
    "invalid_image": InvalidImageError,
    "image_fetch_failed": ImageFetchError,
    "image_too_large": ImageTooLargeError,
    "unsupported_media_type": UnsupportedMediaTypeError,
    "unauthorized": AuthenticationError,
    "insufficient_credits": InsufficientCreditsError,
    "forbidden": PermissionDeniedError,
    "account_restricted": PermissionDeniedError,
    "not_found": NotFoundError,
    "idempotency_conflict": IdempotencyConflictError,
    "rate_limited": RateLimitError,
    "upstream_error": UpstreamError,
    "upstream_unavailable": UpstreamUnavailableError,
    "upstream_timeout": UpstreamTimeoutError,
    "service_unavailable": ServiceUnavailableError,
    "internal_error": InternalServerError,
}

_BY_STATUS: dict[int, type[AltTextError]] = {
    401: AuthenticationError,
    402: InsufficientCreditsError,
    403: PermissionDeniedError,
    404: NotFoundError,
    409: ConflictError,
    413: ImageTooLargeError,
    415: UnsupportedMediaTypeError,
    429: RateLimitError,
    502: UpstreamError,
    503: ServiceUnavailableError,
    504: UpstreamTimeoutError,
}


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        from datetime import datetime, timezone
        from email.utils import parsedate_to_datetime

        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=timezone.utc)
        seconds = (when - datetime.now(timezone.utc)).total_seconds()
    return max(0.0, seconds) if seconds == seconds else None  # NaN is no answer


def error_class(status: int | None, code: str | None) -> type[AltTextError]:
    if code in _BY_CODE:
        return _BY_CODE[code]
    if status is None:
        return AltTextError
    if status in _BY_STATUS:
        return _BY_STATUS[status]
    if 400 <= status < 500:
        return InvalidRequestError
    if status >= 500:
        return InternalServerError
    return AltTextError


def problem_of(response: httpx.Response) -> dict[str, Any]:
    """The problem document of an error response ({} when the body is not JSON)."""
    try:
        body = json.loads(response.content)
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def from_response(response: httpx.Response) -> AltTextError:
    """The exception for an error response, problem+json or not."""
    problem = problem_of(response)
    code = problem.get("code") if isinstance(problem.get("code"), str) else None
    detail = problem.get("detail")
    if not isinstance(detail, str) or not detail:
        text = response.text.strip()
        detail = text[:500] if text and not problem else f"HTTP {response.status_code}"
    title = problem.get("title") if isinstance(problem.get("title"), str) else None
    request_id = problem.get("request_id") or response.headers.get("x-request-id")
    errors = problem.get("errors")
    cls = error_class(response.status_code, code)
    return cls(
        detail,
        status=response.status_code,
        code=code,
        title=title,
        detail=detail,
        request_id=request_id if isinstance(request_id, str) else None,
        errors=errors if isinstance(errors, list) else None,
        type=problem.get("type") if isinstance(problem.get("type"), str) else None,
        retry_after=parse_retry_after(response.headers.get("retry-after")),
        headers=response.headers,
    )
