"""Python client of the AltText API.

from alttext_client import AltText

client = AltText(api_key="at_live_…", base_url="https://alttext.example")
result = client.alt_text.create("photo.jpg", context="Our team at the 2025 meetup")
print(result.alt_text)
"""

from alttext_client._client import AltText, AsyncAltText
from alttext_client._version import __version__
from alttext_client.errors import (
    AltTextError,
    APIConnectionError,
    APITimeoutError,
    AuthenticationError,
    ConflictError,
    IdempotencyConflictError,
    ImageFetchError,
    ImageTooLargeError,
    InsufficientCreditsError,
    InternalServerError,
    InvalidImageError,
    InvalidRequestError,
    NotFoundError,
    PermissionDeniedError,
    RateLimitError,
    ServiceUnavailableError,
    UnsupportedMediaTypeError,
    UpstreamError,
    UpstreamTimeoutError,
    UpstreamUnavailableError,
)
from alttext_client.types import (
    Account,
    AltTextResult,
    ApiKey,
    Batch,
    BatchItemResult,
    Checkout,
    CreatedApiKey,
    KeyList,
    Model,
    ModelList,
    Problem,
    Transaction,
    TransactionList,
    UsagePeriod,
    UsageReport,
)

__all__ = [
    "APIConnectionError",
    "APITimeoutError",
    "Account",
    "AltText",
    "AltTextError",
    "AltTextResult",
    "ApiKey",
    "AsyncAltText",
    "AuthenticationError",
    "Batch",
    "BatchItemResult",
    "Checkout",
    "ConflictError",
    "CreatedApiKey",
    "IdempotencyConflictError",
    "ImageFetchError",
    "ImageTooLargeError",
    "InsufficientCreditsError",
    "InternalServerError",
    "InvalidImageError",
    "InvalidRequestError",
    "KeyList",
    "Model",
    "ModelList",
    "NotFoundError",
    "PermissionDeniedError",
    "Problem",
    "RateLimitError",
    "ServiceUnavailableError",
    "Transaction",
    "TransactionList",
    "UnsupportedMediaTypeError",
    "UpstreamError",
    "UpstreamTimeoutError",
    "UpstreamUnavailableError",
    "UsagePeriod",
    "UsageReport",
    "__version__",
]
