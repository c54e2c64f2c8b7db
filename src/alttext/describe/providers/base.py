"""The one interface every model provider implements (OpenRouter, OpenAI-compatible, local)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from PIL import Image

from alttext.describe.types import DescribeOptions


@dataclass(frozen=True)
class ModelRequest:
    """One call to a vision model.

    ``system`` holds the rules; ``user`` holds the task with the caller's context marked as data.
    ``image`` is the prepared, metadata-free encoding; ``pixels`` the same image decoded, for
    providers that run locally (no second decode). ``options`` lets a local provider follow the
    role and language without parsing the prompt.
    """

    system: str
    user: str
    image: bytes
    mime: str
    options: DescribeOptions
    pixels: Image.Image | None = None
    json_schema: dict[str, Any] | None = None
    max_tokens: int = 400
    temperature: float = 0.2
    model: str | None = None


@dataclass(frozen=True)
class ModelReply:
    """The raw answer. ``content`` is the model's text (JSON when a schema was requested)."""

    content: str
    model: str
    provider: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    cost_usd: float | None = None
    generation_id: str | None = None
    # Reasons the provider itself wants a human to look (the offline engine uses this).
    review_reasons: tuple[str, ...] = ()
    # The answer stopped at the output limit even with more room; ``content`` is what arrived.
    # The engine keeps the alt texts that arrived whole and says what was lost.
    truncated: bool = False
    # Why no long description came although one was asked for ("the offline engine cannot
    # describe charts"); the engine puts it into review_reasons instead of its generic reason.
    no_long_description: str | None = None


@dataclass(frozen=True)
class ModelInfo:
    id: str
    name: str
    input_modalities: tuple[str, ...] = ("text", "image")
    prompt_price_usd: float | None = None  # per token
    completion_price_usd: float | None = None  # per token
    image_price_usd: float | None = None  # per image
    extra: dict[str, Any] = field(default_factory=dict)


# Told of every call a provider makes to a model server: (model, outcome, seconds). Outcomes:
# ok, truncated (cut off at the output limit), error, timeout, unavailable, refused
# (moderation). The engine knows nothing of metrics; the process wires this to them.
UpstreamObserver = Callable[[str, str, float], None]


class Provider(Protocol):
    """A source of alt text. Raises ``alttext.describe.errors`` Upstream* errors on failure."""

    name: str

    async def complete(self, request: ModelRequest) -> ModelReply: ...

    async def models(self) -> list[ModelInfo]: ...

    def routing_policy(self) -> dict[str, Any]:
        """What the provider promises about data (shown in /readyz and the docs)."""
        ...

    async def aclose(self) -> None: ...
