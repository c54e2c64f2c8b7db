"""The one error hierarchy of the service.

It lives in ``describe/`` because the engine depends on nothing else in the package, yet its
failures (bad image, refused URL, upstream trouble) are the same public errors the API returns.
``alttext.errors`` adds the account-level errors and the HTTP handler on top of this base.
"""

from __future__ import annotations

from typing import Any, ClassVar


class AppError(Exception):
    """An expected failure with a stable public ``code`` (see API.md) and HTTP ``status``."""

    code: ClassVar[str] = "internal_error"
    status: ClassVar[int] = 500
    title: ClassVar[str] = "Internal server error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, Any]] | None = None,
        retry_after: float | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.retry_after = retry_after
        # A few codes span two statuses (invalid_request is 400 or 422).
        self.status_override = status

    @property
    def http_status(self) -> int:
        return self.status_override or self.status


class InvalidRequest(AppError):
    code = "invalid_request"
    status = 422
    title = "Invalid request"


class InvalidImage(AppError):
    code = "invalid_image"
    status = 400
    title = "Invalid image"


class UnsupportedMediaType(AppError):
    code = "unsupported_media_type"
    status = 415
    title = "Unsupported image format"


class ImageTooLarge(AppError):
    code = "image_too_large"
    status = 413
    title = "Image too large"


class ImageFetchFailed(AppError):
    code = "image_fetch_failed"
    status = 400
    title = "Image could not be fetched"


class UpstreamError(AppError):
    code = "upstream_error"
    status = 502
    title = "The model provider failed"


class UpstreamUnavailable(AppError):
    code = "upstream_unavailable"
    status = 503
    title = "The model provider is unavailable"


class UpstreamTimeout(AppError):
    code = "upstream_timeout"
    status = 504
    title = "The model provider timed out"
