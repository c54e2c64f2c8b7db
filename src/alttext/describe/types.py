"""The engine's public data: what a caller asks for and what it gets back.

Plain dataclasses, no web framework: the API, the CLI and the queue all build these.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Role = Literal["auto", "informative", "decorative", "functional", "text", "complex"]
ResolvedRole = Literal["informative", "decorative", "functional", "text", "complex"]
ROLES: tuple[Role, ...] = ("auto", "informative", "decorative", "functional", "text", "complex")

MIN_MAX_LENGTH = 20
MAX_MAX_LENGTH = 1000
DEFAULT_MAX_LENGTH = 125
MAX_CONTEXT_CHARS = 2000
MAX_KEYWORDS = 10


@dataclass(frozen=True)
class DescribeOptions:
    """What the caller knows about the image's place on the page. Validated by the caller."""

    role: Role = "auto"
    context: str | None = None
    link_target: str | None = None
    languages: tuple[str, ...] = ("en",)
    max_length: int = DEFAULT_MAX_LENGTH
    keywords: tuple[str, ...] = ()
    long_description: bool = False
    model: str | None = None


@dataclass(frozen=True)
class ImageInfo:
    width: int
    height: int
    format: str
    sent_width: int
    sent_height: int


@dataclass(frozen=True)
class Usage:
    input_tokens: int | None = None
    output_tokens: int | None = None
    upstream_cost_usd: float | None = None


@dataclass(frozen=True)
class Timing:
    prepare_ms: int
    upstream_ms: int


@dataclass(frozen=True)
class Description:
    """Checked alt text for one image, in every requested language."""

    alt_text: str
    alt_texts: dict[str, str]
    decorative: bool
    role: ResolvedRole
    language: str
    long_description: str | None
    text_in_image: str | None
    needs_review: bool
    review_reasons: list[str]
    model: str
    image: ImageInfo
    usage: Usage
    timing: Timing
    # Hash of the prepared image and options: a result-cache key that never holds the image.
    cache_key: str = ""
    attempts: int = 1
    extra: dict[str, str] = field(default_factory=dict)
