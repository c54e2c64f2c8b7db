"""Typed results: pydantic models of the API's JSON answers (API.md).

The models accept fields they do not know (a newer service may add some: they are kept, as
attributes, not dropped), so an older client keeps working.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Account",
    "AltTextResult",
    "ApiKey",
    "Batch",
    "BatchItemResult",
    "Checkout",
    "CreatedApiKey",
    "ImageInfo",
    "ItemStatus",
    "JobCounts",
    "JobInfo",
    "JobItem",
    "JobResult",
    "JobResultList",
    "JobSource",
    "JobStatus",
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
    "WebhookDelivery",
    "WebhookDeliveryList",
    "WebhookSecret",
]

Role = Literal["auto", "informative", "decorative", "functional", "text", "complex"]
JobStatus = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
"""A job's ``status``; ``completed``, ``failed`` and ``cancelled`` are final."""
ItemStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
"""A job item's ``status`` (its result row)."""
FINAL_JOB_STATUSES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})


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


# -- bulk jobs -------------------------------------------------------------------------------------


class JobItem(BaseModel):
    """One image of a job (an input): its URL and what the page says about it. Unset options
    come from the job's ``defaults``. A plain URL string or a mapping with these keys works too.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image_url: str
    id: str | None = None  # yours; results carry it back
    context: str | None = None
    role: Role | None = None
    link_target: str | None = None
    language: str | list[str] | None = None

    @field_validator("image_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value[:8].lower().startswith(("http://", "https://")):
            raise ValueError(
                "a job item is an http(s) image URL the service fetches; send local files "
                "with alt_text.create or alt_text.batch"
            )
        return value


class JobCounts(_Model):
    """How many items of a job are in each item status."""

    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0

    @property
    def done(self) -> int:
        """Items that have ended: succeeded, failed, skipped or cancelled."""
        return self.succeeded + self.failed + self.skipped + self.cancelled


class JobSource(_Model):
    """The page or sitemap a source job crawls."""

    url: str
    max_pages: int | None = None
    pages_crawled: int = 0
    crawl_state: str | None = None  # pending, running, done or failed


class JobInfo(_Model):
    """A job as ``GET /v1/jobs/{id}`` answers it (also ``data.job`` of a webhook event).

    ``status`` is one of ``JobStatus``; ``total`` counts the items (for a crawl: once the
    crawl is done); ``eta_s`` is the seconds left at the pace so far (running jobs only).
    """

    id: str
    object: str = "job"
    status: str
    total: int = 0
    counts: JobCounts = Field(default_factory=JobCounts)
    credits_spent: int = 0
    eta_s: int | None = None
    source: JobSource | None = None
    overwrite: bool = False
    webhook_url: str | None = None
    error: str | None = None
    created_at: str
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def ended(self) -> bool:
        """The status is final: ``completed``, ``failed`` or ``cancelled``."""
        return self.status in FINAL_JOB_STATUSES


class JobResult(_Model):
    """One item of a job: its alt text, or why not (``problem``), or the alt it kept."""

    item_id: str
    id: str | None = None  # yours, if you gave one
    image_url: str
    page_url: str | None = None
    status: str  # one of ItemStatus
    alt_text: str | None = None
    decorative: bool | None = None
    role: str | None = None
    existing_alt: str | None = None
    needs_review: bool | None = None
    review_reasons: list[str] = Field(default_factory=list)
    problem: Problem | None = None


class JobResultList(_Model):
    """A page of ``GET /v1/jobs/{id}/results``; the next starts after ``data[-1].item_id``."""

    object: str = "list"
    data: list[JobResult]
    has_more: bool


class WebhookSecret(_Model):
    """The secret that signs the account's job webhooks (Standard Webhooks, ``whsec_…``)."""

    secret: str
    rotated_at: str | None = None


class WebhookDelivery(_Model):
    """One attempt to deliver a webhook event (never its body)."""

    id: str
    object: str = "webhook_delivery"
    message_id: str  # the webhook-id header: the same on every attempt of one event
    job_id: str | None = None
    event: str
    url: str
    attempt: int
    outcome: str  # delivered, http_error, timeout, network_error or refused
    status_code: int | None = None
    latency_ms: int
    attempted_at: str


class WebhookDeliveryList(_Model):
    object: str = "list"
    data: list[WebhookDelivery]
    has_more: bool
