"""Where fix gets alt text: the local engine in-process, or a running service over HTTP.

Both fetch remote images with the engine's SSRF-safe fetcher; neither raises for one image's
failure (a :class:`GenerationFailed` says why, and fix counts the image as skipped).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import httpx

from alttext.describe.errors import AppError
from alttext.describe.fetch import FetchLimits, fetch_image
from alttext.describe.types import DescribeOptions

if TYPE_CHECKING:
    from alttext.config import Settings
    from alttext.runtime import Runtime


class GenerationFailed(Exception):
    """One image could not be described; the message says why (shown as "skipped").

    ``code`` is the problem's error code when there is one (``image_fetch_failed``,
    ``unauthorized``…), else ``generation_failed``."""

    def __init__(self, message: str, code: str = "generation_failed") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class AltRequest:
    context: str | None
    role: str  # "auto" or "functional"
    link_target: str | None
    language: str  # a BCP 47 tag; ``describe`` may pass several, comma-separated
    max_length: int = 125


@dataclass(frozen=True)
class Generated:
    alt_text: str
    needs_review: bool
    credits: int  # spent on this image (0 on the local engine)
    # The rest of the answer, for callers that show more than the alt text (describe, MCP).
    alt_texts: dict[str, str] = field(default_factory=dict)
    role: str | None = None
    decorative: bool = False
    review_reasons: tuple[str, ...] = ()
    model: str | None = None


class Generator(Protocol):
    async def fetch(self, url: str) -> bytes: ...

    async def describe(self, image: bytes, request: AltRequest) -> Generated: ...


class LocalGenerator:
    """The engine of this process (``open_process(settings, engine=True)``)."""

    def __init__(self, runtime: Runtime) -> None:
        self.runtime = runtime

    async def fetch(self, url: str) -> bytes:
        try:
            return await fetch_image(url, self.runtime.http, self.runtime.fetch_limits)
        except AppError as exc:
            raise GenerationFailed(exc.detail, exc.code) from exc

    async def describe(self, image: bytes, request: AltRequest) -> Generated:
        options = DescribeOptions(
            role=request.role,  # type: ignore[arg-type]
            context=request.context or None,
            link_target=request.link_target or None,
            languages=tuple(x.strip() for x in request.language.split(",") if x.strip()) or ("en",),
            max_length=request.max_length,
        )
        try:
            d = await self.runtime.engine.describe(image, options)
        except AppError as exc:
            raise GenerationFailed(exc.detail, exc.code) from exc
        return Generated(
            d.alt_text,
            d.needs_review,
            0,
            alt_texts=dict(d.alt_texts),
            role=d.role,
            decorative=bool(d.decorative),
            review_reasons=tuple(d.review_reasons),
            model=d.model,
        )


class RemoteGenerator:
    """``POST /v1/alt-text`` (multipart) on a running service."""

    def __init__(
        self,
        client: httpx.AsyncClient,
        api_key: str,
        *,
        fetch_client: httpx.AsyncClient | None = None,
        fetch_limits: FetchLimits = FetchLimits(),
    ) -> None:
        self.client = client
        self.api_key = api_key
        self.fetch_client = fetch_client or client
        self.fetch_limits = fetch_limits

    async def fetch(self, url: str) -> bytes:
        try:
            return await fetch_image(url, self.fetch_client, self.fetch_limits)
        except AppError as exc:
            raise GenerationFailed(exc.detail, exc.code) from exc

    async def describe(self, image: bytes, request: AltRequest) -> Generated:
        data = {"role": request.role, "language": request.language}
        data["max_length"] = str(request.max_length)
        if request.context:
            data["context"] = request.context
        if request.link_target:
            data["link_target"] = request.link_target[:2000]
        try:
            response = await self.client.post(
                "/v1/alt-text",
                data=data,
                files={"image": ("image", image, "application/octet-stream")},
                headers={"Authorization": f"Bearer {self.api_key}"},
            )
        except httpx.HTTPError as exc:
            raise GenerationFailed(f"the service did not answer: {exc}") from exc
        if response.status_code != 200:
            code = "generation_failed"
            try:
                problem = response.json()
                detail = str(problem.get("detail") or response.text)
                code = str(problem.get("code") or code)
            except (ValueError, AttributeError):
                detail = response.text
            raise GenerationFailed(f"HTTP {response.status_code}: {detail[:300]}", code)
        body = response.json()
        credits = (body.get("usage") or {}).get("credits") or 0
        alt = str(body["alt_text"])
        return Generated(
            alt,
            bool(body.get("needs_review")),
            int(credits),
            alt_texts={str(k): str(v) for k, v in (body.get("alt_texts") or {}).items()},
            role=body.get("role"),
            decorative=bool(body.get("decorative", not alt)),
            review_reasons=tuple(str(r) for r in body.get("review_reasons") or ()),
            model=body.get("model"),
        )


@asynccontextmanager
async def open_generator(
    settings: Settings, api_url: str | None, api_key: str | None
) -> AsyncIterator[Generator]:
    """The remote generator when ``api_url`` is set, else the local engine."""
    if api_url:
        if not api_key:
            raise GenerationFailed("--api-url needs --api-key (or ALTTEXT_API_KEY)")
        limits = FetchLimits(allow_private=settings.allow_private_urls)
        async with (
            httpx.AsyncClient(base_url=api_url.rstrip("/"), timeout=120) as client,
            httpx.AsyncClient(timeout=30) as fetch_client,
        ):
            yield RemoteGenerator(client, api_key, fetch_client=fetch_client, fetch_limits=limits)
        return
    from alttext.process import open_process

    async with open_process(settings, engine=True) as services:
        yield LocalGenerator(services.runtime)
