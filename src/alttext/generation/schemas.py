"""Request and response models of alt text, shared by the HTTP API, the worker and the CLI.

Pydantic only (no FastAPI): the names and fields are the public contract of API.md.
"""

from __future__ import annotations

import itertools
import string
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    WithJsonSchema,
    field_validator,
    model_validator,
)

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


def _python_whitespace() -> str:
    """What ``str.strip()`` removes and ``\\s`` matches in Python, as the body of a regex
    character class in ``\\uXXXX`` escapes. ECMA-262 and Hypothesis each read ``\\s`` their own
    way (without U+001C to U+001F, for one), so the document's patterns spell it out."""
    ranges: list[list[int]] = []
    for code in (c for c in range(0x3001) if chr(c).isspace()):
        if ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
    return "".join(f"\\u{lo:04x}" if lo == hi else f"\\u{lo:04x}-\\u{hi:04x}" for lo, hi in ranges)


# For the patterns of values the code strips before it checks them: [{SPACE}]* around them.
SPACE = _python_whitespace()


def _any_case(text: str) -> str:
    return "".join(f"[{c.upper()}{c}]" if c.isalpha() else c for c in text)


def _language_tag_pattern() -> str:
    """The tags ``normalise_tag`` accepts, as a regular expression: the known primary subtags
    (any case; found by asking ``normalise_tag`` itself, so the two cannot drift), an optional
    script and region, and the surrounding whitespace it strips."""
    by_stem: dict[str, list[str]] = {}
    for size in (2, 3):
        for letters in itertools.product(string.ascii_lowercase, repeat=size):
            code = "".join(letters)
            if normalise_tag(code) == code:
                by_stem.setdefault(code[:-1], []).append(code[-1])
    stems = [
        _any_case(stem) + "[" + "".join(f"{c.upper()}{c}" for c in last) + "]"
        for stem, last in sorted(by_stem.items(), key=lambda kv: (-len(kv[0]), kv[0]))
    ]
    return (
        f"^[{SPACE}]*(?:"
        + "|".join(stems)
        + f")(?:-[A-Za-z]{{4}})?(?:-(?:[A-Za-z]{{2}}|[0-9]{{3}}))?[{SPACE}]*$"
    )


# A hostname (letters, digits and hyphens in dot-separated labels, a letter TLD), an optional
# port, path and query: what the fetcher takes apart without a doubt. Looser
# URLs may pass the fetcher's own checks; these never fail them.
HTTP_URL_PATTERN = (
    r"^[Hh][Tt][Tt][Pp][Ss]?://"
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,63}"
    r"(?::[1-9][0-9]{0,3})?"
    r"(?:/[A-Za-z0-9._~!$&'()*+,;=:@/-]*)?"
    r"(?:\?[A-Za-z0-9._~!$&'()*+,;=:@/?-]*)?$"
)
HTTP_URL_SCHEMA: dict[str, Any] = {
    "type": "string",
    "maxLength": MAX_URL_CHARS,
    "pattern": HTTP_URL_PATTERN,
    "format": "uri",
}
LANGUAGE_TAG_SCHEMA: dict[str, Any] = {"type": "string", "pattern": _language_tag_pattern()}
LANGUAGE_LIST_SCHEMA: dict[str, Any] = {
    "type": "array",
    "items": LANGUAGE_TAG_SCHEMA,
    "minItems": 1,
    "maxItems": MAX_LANGUAGES,
    "uniqueItems": True,
}
# What the validator below takes: one known tag, or a list of 1 to 5 different ones.
Languages = Annotated[
    str | list[str],
    WithJsonSchema({"anyOf": [LANGUAGE_TAG_SCHEMA, LANGUAGE_LIST_SCHEMA]}),
]


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
    language: Languages = Field(
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


# Exactly one of the two is a string (``_one_image``); the other is absent or null.
ONE_IMAGE: dict[str, Any] = {
    "oneOf": [
        {"required": ["image"], "properties": {"image": {"type": "string"}}},
        {"required": ["image_url"], "properties": {"image_url": {"type": "string"}}},
    ]
}


# A 16x16 orange PNG: the document's example sends a real image.
EXAMPLE_IMAGE = (
    "iVBORw0KGgoAAAANSUhEUgAAABAAAAAQCAIAAACQkWg2AAAAGklEQVR42mM8UaHBQApgYiARjGoY1TB0NAAAgJwBiHEHVqAAAAAA"
    "SUVORK5CYII="
)


class AltTextRequest(AltTextOptions):
    model_config = ConfigDict(
        json_schema_extra={
            **ONE_IMAGE,
            "examples": [
                {"image": EXAMPLE_IMAGE, "context": "Our shop's logo", "language": ["en", "de"]},
                {"image_url": "https://example.com/photos/cat.jpg", "max_length": 100},
            ],
        }
    )

    image: str | None = Field(
        None,
        description="Base64, or a data:image/...;base64, URI. JSON bodies only.",
        json_schema_extra={"minLength": 1},
    )
    image_url: Annotated[
        str | None, WithJsonSchema({"anyOf": [HTTP_URL_SCHEMA, {"type": "null"}]})
    ] = Field(None, max_length=MAX_URL_CHARS, description="An http(s) URL the service fetches.")

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
    model_config = ConfigDict(
        json_schema_extra={
            **ONE_IMAGE,
            "examples": [{"id": "logo", "image": EXAMPLE_IMAGE, "context": "Our shop's logo"}],
        }
    )

    id: Annotated[str, Field(min_length=1, max_length=100)] = Field(
        description="Your id for the item; answers come back in order with it."
    )


# An item that is not a valid BatchItem still gets an answer: its own problem, in the 200.
_ANY_ITEM: dict[str, Any] = {
    "type": "object",
    "required": ["id"],
    "properties": {"id": {"type": "string", "minLength": 1, "maxLength": 100}},
    "description": "Any other object with an id: it fails alone, with its problem.",
}


def _items_fail_alone(schema: dict[str, Any]) -> None:
    items = schema["properties"]["items"]
    items["items"] = {"anyOf": [items["items"], _ANY_ITEM]}
    items["description"] = (
        "1 to 50 images, each with your id (unique within the batch). An item that is not a "
        "valid BatchItem fails alone: its problem is in the 200 answer, the others run."
    )
    schema["examples"] = [
        {
            "items": [
                {"id": "logo", "image": EXAMPLE_IMAGE},
                {"id": "hero", "image_url": "https://example.com/photos/hero.jpg"},
            ],
            "defaults": {"language": "en", "context": "Our shop's home page"},
        }
    ]


class BatchRequest(BaseModel):
    """The documented shape of a batch body (parsed item by item, so one bad item fails alone)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_items_fail_alone)

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
