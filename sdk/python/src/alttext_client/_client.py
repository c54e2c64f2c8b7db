"""``AltText`` and ``AsyncAltText``: the same surface; only sending and sleeping differ.

Each method builds an ``Operation`` (``_core.Ops``: request and parser, shared) and hands it
to the client's ``_run``, which sends it with retries (``_core.Attempts``, shared).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx

from alttext_client._core import (
    DEFAULT_MAX_RETRIES,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
    Attempts,
    ImageInput,
    Operation,
    Ops,
    client_headers,
    day,
    resolve_config,
)
from alttext_client.types import (
    Account,
    AltTextResult,
    Batch,
    Checkout,
    CreatedApiKey,
    KeyList,
    ModelList,
    Role,
    TransactionList,
    UsageReport,
)

T = TypeVar("T")
Language = str | Sequence[str]
TransactionKind = Literal["grant", "purchase", "usage", "release", "refund", "adjustment"]


def _options(
    context: str | None,
    role: Role | None,
    link_target: str | None,
    language: Language | None,
    max_length: int | None,
    keywords: Sequence[str] | None,
    long_description: bool | None,
    model: str | None,
) -> dict[str, Any]:
    values: dict[str, Any] = {
        "context": context,
        "role": role,
        "link_target": link_target,
        "language": language if language is None or isinstance(language, str) else list(language),
        "max_length": max_length,
        "keywords": None if keywords is None else list(keywords),
        "long_description": long_description,
        "model": model,
    }
    return {k: v for k, v in values.items() if v is not None}


def _usage_params(
    start: date | str | None, end: date | str | None, granularity: str | None
) -> dict[str, str]:
    values = {"from": day(start), "to": day(end), "granularity": granularity}
    return {k: v for k, v in values.items() if v is not None}


def _transaction_params(
    limit: int | None, starting_after: str | None, kind: str | None
) -> dict[str, str]:
    values = {
        "limit": None if limit is None else str(limit),
        "starting_after": starting_after,
        "kind": kind,
    }
    return {k: v for k, v in values.items() if v is not None}


def _checkout_body(amount_usd: float | Decimal | str) -> dict[str, Any]:
    return {"amount_usd": str(amount_usd) if isinstance(amount_usd, Decimal) else amount_usd}


class _Base:
    def __init__(
        self,
        api_key: str | None,
        base_url: str | None,
        timeout: float | httpx.Timeout,
        max_retries: int,
        retry_budget: float,
    ) -> None:
        if max_retries < 0:
            raise ValueError("max_retries must be 0 or more")
        self.api_key, self.base_url = resolve_config(api_key, base_url)
        self.timeout = timeout
        self.max_retries = max_retries
        self.retry_budget = retry_budget

    def _attempts(self, op: Operation[Any]) -> Attempts:
        return Attempts(op.request, max_retries=self.max_retries, budget_s=self.retry_budget)


# -- sync ------------------------------------------------------------------------------------------


class AltText(_Base):
    """Client of the AltText API.

    ``api_key`` and ``base_url`` default to ``ALTTEXT_API_KEY`` and ``ALTTEXT_API_URL`` (the
    service's root; ``/v1`` is added). ``timeout`` is per attempt; failed calls are retried up
    to ``max_retries`` times within ``retry_budget`` seconds. Pass ``http_client`` to bring
    your own ``httpx.Client`` (proxies, event hooks); it is not closed by ``close()``.
    """

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, retry_budget)
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(timeout=timeout)
        self._headers = client_headers(self.api_key)
        self.alt_text = AltTextResource(self)
        self.models = ModelsResource(self)
        self.account = AccountResource(self)
        self.keys = KeysResource(self)
        self.usage = UsageResource(self)
        self.billing = BillingResource(self)

    def _run(self, op: Operation[T]) -> T:
        attempts = self._attempts(op)
        while True:
            request = op.request.build(self._http, self.base_url)
            request.headers.update(self._headers)
            try:
                response = self._http.send(request)
            except httpx.TransportError as exc:
                time.sleep(attempts.after_error(exc))
                continue
            try:
                response.read()
                delay = attempts.after_response(response)
            finally:
                response.close()
            if delay is None:
                return op.parse(response)
            time.sleep(delay)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> AltText:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class AltTextResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def create(
        self,
        image: ImageInput | None = None,
        *,
        image_url: str | None = None,
        context: str | None = None,
        role: Role | None = None,
        link_target: str | None = None,
        language: Language | None = None,
        max_length: int | None = None,
        keywords: Sequence[str] | None = None,
        long_description: bool | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> AltTextResult:
        """Alt text for one image: a path, bytes, a binary file, or an http(s) URL."""
        options = _options(
            context, role, link_target, language, max_length, keywords, long_description, model
        )
        return self._client._run(Ops.create_alt_text(image, image_url, options, idempotency_key))

    def batch(
        self,
        items: Sequence[Mapping[str, Any] | ImageInput],
        *,
        defaults: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Up to 50 images at once. An item is an image (its id is its index) or a mapping
        ``{"id", "image" | "image_url", **options}``. Only successes are charged."""
        return self._client._run(Ops.batch(items, defaults, idempotency_key))


class ModelsResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def list(self) -> ModelList:
        return self._client._run(Ops.get("/models", ModelList))


class AccountResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def get(self) -> Account:
        return self._client._run(Ops.get("/account", Account))


class KeysResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def list(self) -> KeyList:
        return self._client._run(Ops.get("/keys", KeyList))

    def create(self, name: str | None = None) -> CreatedApiKey:
        """A new key; its ``secret`` is shown once."""
        body = {"name": name} if name is not None else {}
        return self._client._run(Ops.post("/keys", CreatedApiKey, body, idempotent=False))

    def revoke(self, key_id: str, *, allow_last: bool = False) -> None:
        params = {"allow_last": "true"} if allow_last else None
        self._client._run(Ops.delete(f"/keys/{key_id}", params))


class UsageResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def get(
        self,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        granularity: Literal["day", "month"] | None = None,
    ) -> UsageReport:
        """Usage per period and model, ``start`` to ``end`` inclusive (default: 30 days)."""
        params = _usage_params(start, end, granularity)
        return self._client._run(Ops.get("/usage", UsageReport, params))


class BillingResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def transactions(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        kind: TransactionKind | None = None,
    ) -> TransactionList:
        """The credit ledger, newest first; page with ``starting_after=<last id>``."""
        params = _transaction_params(limit, starting_after, kind)
        return self._client._run(Ops.get("/billing/transactions", TransactionList, params))

    def checkout(
        self, amount_usd: float | Decimal | str, *, idempotency_key: str | None = None
    ) -> Checkout:
        """A Stripe Checkout for a credit pack: send the user to ``checkout_url``."""
        return self._client._run(
            Ops.post(
                "/billing/checkout",
                Checkout,
                _checkout_body(amount_usd),
                idempotent=True,
                idempotency_key=idempotency_key,
            )
        )


# -- async -----------------------------------------------------------------------------------------


class AsyncAltText(_Base):
    """The asyncio twin of ``AltText``: the same methods, awaited."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        max_retries: int = DEFAULT_MAX_RETRIES,
        retry_budget: float = DEFAULT_RETRY_BUDGET,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(api_key, base_url, timeout, max_retries, retry_budget)
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(timeout=timeout)
        self._headers = client_headers(self.api_key)
        self.alt_text = AsyncAltTextResource(self)
        self.models = AsyncModelsResource(self)
        self.account = AsyncAccountResource(self)
        self.keys = AsyncKeysResource(self)
        self.usage = AsyncUsageResource(self)
        self.billing = AsyncBillingResource(self)

    async def _run(self, op: Operation[T]) -> T:
        attempts = self._attempts(op)
        while True:
            request = op.request.build(self._http, self.base_url)
            request.headers.update(self._headers)
            try:
                response = await self._http.send(request)
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.after_error(exc))
                continue
            try:
                await response.aread()
                delay = attempts.after_response(response)
            finally:
                await response.aclose()
            if delay is None:
                return op.parse(response)
            await asyncio.sleep(delay)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncAltText:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


class AsyncAltTextResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def create(
        self,
        image: ImageInput | None = None,
        *,
        image_url: str | None = None,
        context: str | None = None,
        role: Role | None = None,
        link_target: str | None = None,
        language: Language | None = None,
        max_length: int | None = None,
        keywords: Sequence[str] | None = None,
        long_description: bool | None = None,
        model: str | None = None,
        idempotency_key: str | None = None,
    ) -> AltTextResult:
        """Alt text for one image: a path, bytes, a binary file, or an http(s) URL."""
        options = _options(
            context, role, link_target, language, max_length, keywords, long_description, model
        )
        op = Ops.create_alt_text(image, image_url, options, idempotency_key)
        return await self._client._run(op)

    async def batch(
        self,
        items: Sequence[Mapping[str, Any] | ImageInput],
        *,
        defaults: Mapping[str, Any] | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        """Up to 50 images at once (see ``AltText.alt_text.batch``)."""
        return await self._client._run(Ops.batch(items, defaults, idempotency_key))


class AsyncModelsResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def list(self) -> ModelList:
        return await self._client._run(Ops.get("/models", ModelList))


class AsyncAccountResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def get(self) -> Account:
        return await self._client._run(Ops.get("/account", Account))


class AsyncKeysResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def list(self) -> KeyList:
        return await self._client._run(Ops.get("/keys", KeyList))

    async def create(self, name: str | None = None) -> CreatedApiKey:
        body = {"name": name} if name is not None else {}
        return await self._client._run(Ops.post("/keys", CreatedApiKey, body, idempotent=False))

    async def revoke(self, key_id: str, *, allow_last: bool = False) -> None:
        params = {"allow_last": "true"} if allow_last else None
        await self._client._run(Ops.delete(f"/keys/{key_id}", params))


class AsyncUsageResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def get(
        self,
        start: date | str | None = None,
        end: date | str | None = None,
        *,
        granularity: Literal["day", "month"] | None = None,
    ) -> UsageReport:
        params = _usage_params(start, end, granularity)
        return await self._client._run(Ops.get("/usage", UsageReport, params))


class AsyncBillingResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def transactions(
        self,
        *,
        limit: int | None = None,
        starting_after: str | None = None,
        kind: TransactionKind | None = None,
    ) -> TransactionList:
        params = _transaction_params(limit, starting_after, kind)
        return await self._client._run(Ops.get("/billing/transactions", TransactionList, params))

    async def checkout(
        self, amount_usd: float | Decimal | str, *, idempotency_key: str | None = None
    ) -> Checkout:
        return await self._client._run(
            Ops.post(
                "/billing/checkout",
                Checkout,
                _checkout_body(amount_usd),
                idempotent=True,
                idempotency_key=idempotency_key,
            )
        )
