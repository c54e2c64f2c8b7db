"""Request and response models of bulk jobs (API.md "POST /v1/jobs"), below the HTTP layer so
the worker, the dashboard and the SDK's tests share them."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, model_validator

from alttext.describe.types import MAX_CONTEXT_CHARS, Role
from alttext.generation.schemas import (
    HTTP_URL_SCHEMA,
    LANGUAGE_LIST_SCHEMA,
    LANGUAGE_TAG_SCHEMA,
    MAX_URL_CHARS,
    AltTextOptions,
    Problem,
)

MAX_JOB_ITEMS = 10_000
JobStatus = Literal["queued", "running", "paused", "completed", "failed", "cancelled"]
ItemStatus = Literal["pending", "running", "succeeded", "failed", "skipped", "cancelled"]
# A URL stored now and fetched later: its shape is checked at once (jobs.service.checked_url).
HttpUrl = Annotated[str, WithJsonSchema(HTTP_URL_SCHEMA)]
OptionalHttpUrl = Annotated[
    str | None, WithJsonSchema({"anyOf": [HTTP_URL_SCHEMA, {"type": "null"}]})
]


class JobItemIn(BaseModel):
    """One image of a job: a URL, with what the page says about it. Unset options come from
    the job's ``defaults``."""

    model_config = ConfigDict(extra="forbid")

    id: Annotated[str | None, Field(min_length=1, max_length=100)] = Field(
        None, description="Your id for the item; results carry it back."
    )
    image_url: Annotated[HttpUrl, Field(min_length=1, max_length=MAX_URL_CHARS)]
    context: Annotated[str | None, Field(max_length=MAX_CONTEXT_CHARS)] = None
    role: Role | None = None
    link_target: Annotated[str | None, Field(max_length=MAX_URL_CHARS)] = None
    # Checked merged with the job's defaults, as AltTextOptions.language.
    language: Annotated[
        str | list[str] | None,
        WithJsonSchema({"anyOf": [LANGUAGE_TAG_SCHEMA, LANGUAGE_LIST_SCHEMA, {"type": "null"}]}),
    ] = None


class JobSource(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Annotated[HttpUrl, Field(min_length=1, max_length=MAX_URL_CHARS)] = Field(
        description="An HTML page (crawled with its same-host links) or a sitemap (or index)."
    )
    max_pages: Annotated[int | None, Field(ge=1, le=100_000)] = Field(
        None, description="At most this many pages (capped by the deployment's limit)."
    )


# Exactly one of the two (``_items_or_source``); the other absent or null.
ITEMS_OR_SOURCE: dict[str, Any] = {
    "oneOf": [
        {"required": ["items"], "properties": {"items": {"type": "array"}}},
        {"required": ["source"], "properties": {"source": {"type": "object"}}},
    ]
}


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra=ITEMS_OR_SOURCE)

    items: Annotated[list[JobItemIn] | None, Field(min_length=1, max_length=MAX_JOB_ITEMS)] = None
    source: JobSource | None = None
    overwrite: bool = Field(
        False,
        description="Crawled images that already have a non-empty alt are described too "
        '(alt="" is always kept: it marks a decorative image on purpose).',
    )
    defaults: AltTextOptions | None = Field(
        None, description="Options for every item unless the item sets them."
    )
    webhook_url: Annotated[OptionalHttpUrl, Field(max_length=MAX_URL_CHARS)] = Field(
        None, description="Receives job.completed, job.failed, job.cancelled and job.paused."
    )

    @model_validator(mode="after")
    def _items_or_source(self) -> JobCreate:
        if (self.items is None) == (self.source is None):
            raise ValueError("give exactly one of items and source")
        return self


class JobCounts(BaseModel):
    pending: int = 0
    running: int = 0
    succeeded: int = 0
    failed: int = 0
    skipped: int = 0
    cancelled: int = 0


class JobSourceOut(BaseModel):
    url: str
    max_pages: int | None
    pages_crawled: int
    crawl_state: str | None = Field(description="pending, running, done or failed")


class JobOut(BaseModel):
    id: str
    object: Literal["job"] = "job"
    status: JobStatus
    total: int = Field(description="Items in the job (for a crawl: once the crawl is done).")
    counts: JobCounts
    credits_spent: int
    eta_s: int | None = Field(description="Seconds until done at the current pace, if running.")
    source: JobSourceOut | None
    overwrite: bool
    webhook_url: str | None
    error: str | None = Field(description="Why the job failed, when it did.")
    created_at: str
    started_at: str | None
    finished_at: str | None


class JobList(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobOut]
    has_more: bool


class JobResult(BaseModel):
    item_id: str
    id: str | None = Field(description="Your id for the item, if you gave one.")
    image_url: str
    page_url: str | None
    status: ItemStatus
    alt_text: str | None
    decorative: bool | None
    role: str | None
    existing_alt: str | None
    needs_review: bool | None
    review_reasons: list[str]
    problem: Problem | None


class JobResults(BaseModel):
    object: Literal["list"] = "list"
    data: list[JobResult]
    has_more: bool


# The columns of ?format=csv, in order (API.md), plus the caller's id at the end.
CSV_COLUMNS = (
    "item_id",
    "image_url",
    "page_url",
    "status",
    "alt_text",
    "decorative",
    "role",
    "existing_alt",
    "needs_review",
    "review_reasons",
    "problem",
    "id",
)
