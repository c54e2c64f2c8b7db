"""Typed results: pydantic models of the API's JSON answers (API.md).

The models accept fields they do not know (a newer service may add some: they are kept, as
attributes, not dropped), so an older client keeps working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "Account",
    "AltTextResult",
    "ApiKey",
    "Batch",
    "BatchItemResult",
    "Checkout",
    "CreatedApiKey",
    "ImageInfo",
    "KeyList",
    "Model",
    "ModelList",
    "Problem",
    "Role",
    "Timing",
    "Transaction",
    "TransactionList",
    "Usage",
    "UsagePeriod",
    "UsageReport",
]

Role = Literal["auto", "informative", "decorative", "functional", "text", "complex"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True, protected_namespaces=())


class ImageInfo(_Model):
    width: int
    height: int
    format: str
    sent_width: int
    sent_height: int


class Usage(_Model):
    credits: int | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    upstream_cost_usd: float | None = None


class Timing(_Model):
    total: int
    prepare: int
    upstream: int


class AltTextResult(_Model):
    """The answer of ``POST /v1/alt-text``. A decorative image has ``alt_text == ""``."""

    id: str
    alt_text: str
    alt_texts: dict[str, str] = Field(default_factory=dict)
    decorative: bool
    role: str
    long_description: str | None = None
    text_in_image: str | None = None
    language: str
    needs_review: bool = False
    review_reasons: list[str] = Field(default_factory=list)
    model: str
    cached: bool = False
    image: ImageInfo | None = None
    usage: Usage = Field(default_factory=Usage)
    credits_remaining: int | None = None
    timing_ms: Timing | None = None


class Problem(_Model):
    """An RFC 9457 problem document (a failed batch item carries one)."""

    type: str | None = None
    title: str | None = None
    status: int
    detail: str | None = None
    code: str
    request_id: str | None = None
    errors: list[dict[str, Any]] | None = None


class BatchItemResult(_Model):
    id: str
    status: str  # "succeeded" or "failed"
    result: AltTextResult | None = None
    error: Problem | None = None

    @property
    def ok(self) -> bool:
        return self.result is not None


class Batch(_Model):
    """The answer of ``POST /v1/alt-text/batch``: one entry per item, in order."""

    object: str = "batch"
    data: list[BatchItemResult]
    succeeded: int
    failed: int
    credits_used: int
    credits_remaining: int | None = None

    def __getitem__(self, item_id: str) -> BatchItemResult:
        for entry in self.data:
            if entry.id == item_id:
                return entry
        raise KeyError(item_id)


class Model(_Model):
    id: str
    name: str
    credits_per_image: int
    default: bool = False
    pricing: dict[str, float | None] = Field(default_factory=dict)


class ModelList(_Model):
    object: str = "list"
    data: list[Model]


class Account(_Model):
    id: str
    email: str
    name: str | None = None
    status: str
    restricted: bool = False
    credits_remaining: int
    created_at: str
    settings: dict[str, Any] = Field(default_factory=dict)


class ApiKey(_Model):
    """An API key as listed: never the secret, only its first characters (``prefix``)."""

    id: str
    name: str | None = None
    prefix: str
    created_at: str
    last_used_at: str | None = None
    revoked_at: str | None = None


class CreatedApiKey(ApiKey):
    secret: str  # shown once: store it now


class KeyList(_Model):
    object: str = "list"
    data: list[ApiKey]


class UsagePeriod(_Model):
    period: str
    model: str | None = None
    requests: int
    succeeded: int
    failed: int
    credits: int
    input_tokens: int
    output_tokens: int
    upstream_cost_usd: float


class UsageReport(_Model):
    object: str = "usage"
    start: str
    end: str
    granularity: str
    totals: UsagePeriod
    data: list[UsagePeriod]


class Transaction(_Model):
    """One entry of the credit ledger; ``credits`` is signed (usage is negative)."""

    id: str
    object: str = "credit_transaction"
    kind: str
    credits: int
    amount_usd: float | None = None
    reference: str | None = None
    receipt_url: str | None = None
    note: str | None = None
    created_at: str


class TransactionList(_Model):
    object: str = "list"
    data: list[Transaction]
    has_more: bool


class Checkout(_Model):
    checkout_url: str
    session_id: str
    credits: int
    amount_usd: float
