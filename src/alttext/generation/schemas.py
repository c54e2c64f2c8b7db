"""Request and response models of alt text, shared by the HTTP API, the worker and the CLI.

Pydantic only (no FastAPI): the names and fields are the public contract of API.md.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from alttext.describe.languages import normalise_tag
from alttext.describe.types import (
    DEFAULT_MAX_LENGTH,
    MAX_CONTEXT_CHARS,
    MAX_KEYWORDS,
    MAX_MAX_LENGTH,
    MIN_MAX_LENGTH,
    Role,
)

MAX_LANGUAGES = 5
MAX_URL_CHARS = 2048


class AltTextOptions(BaseModel):
    """Everything about an image's place on the page; shared by single and batch requests."""

    model_config = ConfigDict(extra="forbid")

    context: Annotated[str | None, Field(max_length=MAX_CONTEXT_CHARS)] = Field(
        None, description="Surrounding text, page title or caption. Used, never copied."
    )
    role: Role = Field("auto", description="What the image is for on the page.")
    link_target: Annotated[str | None, Field(max_length=MAX_URL_CHARS)] = Field(
        None, description="For functional images: where the link or button goes."
    )
    language: str | list[str] = Field(
        "en", description="BCP 47 tag, or a list of tags for one text per language."
    )
    max_length: int = Field(
        DEFAULT_MAX_LENGTH,
        ge=MIN_MAX_LENGTH,
        le=MAX_MAX_LENGTH,
        description="Hard cap in characters.",
    )
    keywords: list[Annotated[str, Field(min_length=1, max_length=60)]] = Field(
        default_factory=list,
        max_length=MAX_KEYWORDS,
        description="SEO terms, used only where true.",
    )
    long_description: bool = Field(False, description="Also return a long description.")
    model: Annotated[str | None, Field(max_length=200)] = Field(
        None, description="One of GET /v1/models; default: the configured fallback chain."
    )

    @field_validator("language")
    @classmethod
    def _languages(cls, value: str | list[str]) -> str | list[str]:
        tags = [value] if isinstance(value, str) else value
        if not tags:
            raise ValueError("give at least one language")
        if len(tags) > MAX_LANGUAGES:
            raise ValueError(f"at most {MAX_LANGUAGES} languages")
        out = []
        for tag in tags:
            norm = normalise_tag(tag)
            if norm is None:
                raise ValueError(f"{tag[:40]!r} is not a supported BCP 47 language tag")
            if norm in out:
                raise ValueError(f"language {norm} is listed twice")
            out.append(norm)
        return out[0] if isinstance(value, str) else out

    @property
    def languages(self) -> tuple[str, ...]:
        return (self.language,) if isinstance(self.language, str) else tuple(self.language)


class AltTextRequest(AltTextOptions):
    image: str | None = Field(
        None, description="Base64, or a data:image/...;base64, URI. JSON bodies only."
    )
    image_url: Annotated[str | None, Field(max_length=MAX_URL_CHARS)] = Field(
        None, description="An http(s) URL the service fetches."
    )

    @model_validator(mode="after")
    def _one_image(self) -> AltTextRequest:
        if (self.image is None) == (self.image_url is None):
            raise ValueError("give exactly one of image and image_url")
        return self


class ImageOut(BaseModel):
    width: int
    height: int
    format: str
    sent_width: int
    sent_height: int


class UsageOut(BaseModel):
    credits: int | None
    input_tokens: int | None
    output_tokens: int | None
    upstream_cost_usd: float | None


class TimingOut(BaseModel):
    total: int
    prepare: int
    upstream: int


class AltTextResponse(BaseModel):
    id: str
    alt_text: str
    alt_texts: dict[str, str]
    decorative: bool
    role: str
    long_description: str | None
    text_in_image: str | None
    language: str
    needs_review: bool
    review_reasons: list[str]
    model: str
    cached: bool
    image: ImageOut
    usage: UsageOut
    credits_remaining: int | None
    timing_ms: TimingOut


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str
    title: str
    status: int
    detail: str
    code: str
    request_id: str | None
    errors: list[dict[str, str | None]] | None = None


MAX_BATCH_ITEMS = 50


class BatchItem(AltTextRequest):
    id: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="Your id for the item; answers come back in order with it."
    )


class BatchRequest(BaseModel):
    """The documented shape of a batch body (parsed item by item, so one bad item fails alone)."""

    model_config = ConfigDict(extra="forbid")

    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    defaults: AltTextOptions | None = Field(
        None, description="Options applied to every item unless the item sets them."
    )


class BatchItemResult(BaseModel):
    id: str
    status: str = Field(description="succeeded or failed")
    result: AltTextResponse | None = None
    error: Problem | None = None


class BatchResponse(BaseModel):
    object: str = "batch"
    data: list[BatchItemResult]
    succeeded: int
    failed: int
    credits_used: int
    credits_remaining: int | None
