"""Building the process's long-lived parts from settings: engine, provider, pools, clients.

Nothing here runs at import time; the app's lifespan and the CLI call ``open_runtime``.
"""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx

from alttext import metrics
from alttext.config import Settings
from alttext.describe.classify import ImageClassifier
from alttext.describe.engine import Engine
from alttext.describe.fetch import FetchLimits
from alttext.describe.image import ImageLimits
from alttext.describe.ocr import OcrReader
from alttext.describe.providers.base import Provider
from alttext.describe.providers.local import LocalProvider
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.describe.rules import LanguageIdentifier


@functools.cache
def shared_ocr_reader() -> OcrReader:
    """The OCR models load once per process (about a second) and are shared by every app."""
    return OcrReader()


@functools.cache
def shared_image_classifier() -> ImageClassifier:
    """The offline engine's image classifier (an ONNX model in the wheel) loads once per process."""
    return ImageClassifier()


@functools.cache
def shared_language_identifier() -> LanguageIdentifier:
    """The language model (rule 10) loads once per process too (about a second)."""
    return LanguageIdentifier()


@dataclass
class Runtime:
    """What every request needs and nothing request-specific: built once per process."""

    settings: Settings
    http: httpx.AsyncClient
    executor: ThreadPoolExecutor
    ocr: OcrReader
    provider: Provider
    engine: Engine
    image_limits: ImageLimits
    fetch_limits: FetchLimits


def image_limits(settings: Settings) -> ImageLimits:
    return ImageLimits(
        max_bytes=settings.max_image_bytes,
        max_pixels=settings.max_image_pixels,
        min_side=settings.min_image_side,
        target_long_side=settings.target_long_side,
        text_long_side=settings.text_long_side,
    )


def fetch_limits(settings: Settings) -> FetchLimits:
    return FetchLimits(
        max_bytes=settings.max_image_bytes,
        total_timeout_s=settings.fetch_timeout_s,
        allow_private=settings.allow_private_urls,
    )


def build_provider(
    settings: Settings,
    http: httpx.AsyncClient,
    ocr: OcrReader,
    executor: ThreadPoolExecutor,
    classifier: ImageClassifier | None = None,
) -> Provider:
    kind = settings.resolved_provider
    if kind == "local":
        return LocalProvider(ocr, executor, classifier)
    if kind == "openrouter":
        config = ChatConfig(
            base_url=settings.openrouter_base_url,
            api_key=settings.openrouter_api_key,
            models=settings.model_chain,
            openrouter=True,
            zero_data_retention=settings.zero_data_retention,
            app_url=settings.public_url,
            timeout_s=settings.upstream_timeout_s,
            total_budget_s=settings.upstream_budget_s,
        )
    else:
        assert settings.openai_base_url is not None  # enforced by Settings
        config = ChatConfig(
            base_url=settings.openai_base_url,
            api_key=settings.openai_api_key,
            models=settings.model_chain,
            openrouter=False,
            timeout_s=settings.upstream_timeout_s,
            total_budget_s=settings.upstream_budget_s,
        )
    # Every HTTP call to the model server, retries included, lands in /metrics.
    return ChatCompletionsProvider(config, http, on_upstream=metrics.record_upstream_call)


@asynccontextmanager
async def open_runtime(settings: Settings) -> AsyncIterator[Runtime]:
    # Pillow and onnxruntime release the GIL, so threads use every core for image work.
    workers = settings.workers or os.cpu_count() or 2
    executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="alttext-cpu")
    # One client for providers and URL fetching; the fetcher sets its own per-call limits.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(settings.upstream_timeout_s, connect=10.0),
        limits=httpx.Limits(max_connections=200, max_keepalive_connections=40),
        follow_redirects=False,
        # No proxies from the environment: the URL fetcher pins connections to checked IPs.
        trust_env=False,
    )
    ocr = await asyncio.to_thread(shared_ocr_reader)
    # Loaded at start-up rather than on a request.
    language_identifier = await asyncio.to_thread(shared_language_identifier)
    # Only the offline engine uses the classifier: no model load when a vision model is set.
    classifier = (
        await asyncio.to_thread(shared_image_classifier)
        if settings.resolved_provider == "local"
        else None
    )
    provider = build_provider(settings, http, ocr, executor, classifier)
    limits = image_limits(settings)
    engine = Engine(
        provider,
        executor=executor,
        language_identifier=language_identifier,
        image_limits=limits,
        ocr=ocr,
    )
    try:
        yield Runtime(
            settings=settings,
            http=http,
            executor=executor,
            ocr=ocr,
            provider=provider,
            engine=engine,
            image_limits=limits,
            fetch_limits=fetch_limits(settings),
        )
    finally:
        await provider.aclose()
        await http.aclose()
        executor.shutdown(wait=False, cancel_futures=True)
