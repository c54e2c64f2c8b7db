"""``AltText`` and ``AsyncAltText``: the same surface; only sending and sleeping differ.

Each method builds an ``Operation`` (``_core.Ops``: request and parser, shared) and hands it
to the client's ``_run``, which sends it with retries (``_core.Attempts``, shared).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping, Sequence
from datetime import date
from decimal import Decimal
from types import TracebackType
from typing import Any, Literal, TypeVar

import httpx
from pydantic import ConfigDict, PrivateAttr

from alttext_client._core import (
    DEFAULT_JOBS_PAGE,
    DEFAULT_MAX_RETRIES,
    DEFAULT_RESULTS_PAGE,
    DEFAULT_RETRY_BUDGET,
    DEFAULT_TIMEOUT,
    Attempts,
    ImageInput,
    JobItemInput,
    Operation,
    Ops,
    Waiting,
    client_headers,
    day,
    page_params,
    resolve_config,
)
from alttext_client.types import (
    Account,
    AltTextResult,
    Batch,
    Checkout,
    CreatedApiKey,
    JobInfo,
    JobResult,
    JobResultList,
    KeyList,
    ModelList,
    Role,
    TransactionList,
    UsageReport,
    WebhookDeliveryList,
    WebhookSecret,
    _Model,
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
    return page_params(limit, starting_after, kind=kind)


def _checkout_body(amount_usd: float | Decimal | str) -> dict[str, Any]:
    return {"amount_usd": str(amount_usd) if isinstance(amount_usd, Decimal) else amount_usd}


class _LiveJob(JobInfo):
    """What ``Job`` and ``AsyncJob`` share: a job that updates itself in place."""

    model_config = ConfigDict(frozen=False)

    def _take(self, fresh: JobInfo) -> None:
        for name in JobInfo.model_fields:
            setattr(self, name, getattr(fresh, name))
        object.__setattr__(self, "__pydantic_extra__", dict(fresh.model_extra or {}))

    def _unbound(self) -> RuntimeError:
        return RuntimeError(
            f"job {self.id} is not bound to a client: use client.jobs.get({self.id!r})"
        )


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
        self.jobs = JobsResource(self)
        self.webhooks = WebhooksResource(self)

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


class Job(_LiveJob):
    """A bulk job, bound to the client that created or fetched it.

    The fields are the job as last seen (``status``, ``counts``, ``total``, ``credits_spent``,
    ``eta_s``, …); ``refresh()``, ``wait()`` and ``cancel()`` update them in place and return
    the job itself.
    """

    _client: AltText | None = PrivateAttr(default=None)

    def _bind(self, client: AltText) -> Job:
        self._client = client
        return self

    @property
    def _api(self) -> AltText:
        if self._client is None:
            raise self._unbound()
        return self._client

    def refresh(self) -> Job:
        """Fetch the job's status and counts now."""
        self._take(self._api._run(Ops.get_job(self.id, JobInfo)))
        return self

    def wait(
        self,
        *,
        progress: Callable[[Job], Any] | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        until_paused: bool = False,
    ) -> Job:
        """Poll until the job is ``completed``, ``failed`` or ``cancelled`` and return it.

        ``progress(job)`` is called after every poll, with fresh counts. A ``paused`` job (out
        of credits) resumes by itself when credits arrive, so it is waited for, up to
        ``timeout``, unless ``until_paused=True``: then a pause ends the wait too. Past
        ``timeout`` seconds (None: no limit) ``JobTimeoutError`` is raised; the job goes on.
        """
        waiting = Waiting(poll_interval, timeout, until_paused)
        while True:
            self.refresh()
            if progress is not None:
                progress(self)
            delay = waiting.after_poll(self)
            if delay is None:
                return self
            time.sleep(delay)

    def results(self, *, page_size: int = DEFAULT_RESULTS_PAGE) -> Iterator[JobResult]:
        """Every item's result, in item order, fetched ``page_size`` (1–1000) at a time."""
        after: str | None = None
        while True:
            page = self.results_page(limit=page_size, starting_after=after)
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].item_id

    def results_page(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> JobResultList:
        """One page of results; the next starts after ``page.data[-1].item_id``."""
        return self._api._run(Ops.job_results(self.id, limit, starting_after))

    def results_csv(self) -> str:
        """Every result as CSV (a header row, then one row per item, in item order)."""
        return self._api._run(Ops.job_results_csv(self.id))

    def cancel(self) -> Job:
        """Cancel: no item starts after this; running items finish. Ended jobs are kept as
        they are."""
        self._take(self._api._run(Ops.cancel_job(self.id, JobInfo)))
        return self


class JobList(_Model):
    """A page of the account's jobs, newest first; the next starts after ``data[-1].id``."""

    object: str = "list"
    data: list[Job]
    has_more: bool


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


class JobsResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def create(
        self,
        items: Iterable[JobItemInput] | None = None,
        *,
        source: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        max_pages: int | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Job:
        """Start a bulk job: ``items`` (1 to 10,000 image URLs, ``JobItem``s or mappings) or
        ``source`` (an HTML page or sitemap to crawl, ``max_pages`` at most; ``overwrite`` to
        redo images that already have alt text). ``defaults`` are options for every item.
        Sent with an ``Idempotency-Key``, so retries never start two jobs."""
        op = Ops.create_job(
            Job, items, source, defaults, overwrite, max_pages, webhook_url, idempotency_key
        )
        return self._client._run(op)._bind(self._client)

    def get(self, job_id: str) -> Job:
        return self._client._run(Ops.get_job(job_id, Job))._bind(self._client)

    def list(self, *, limit: int | None = None, starting_after: str | None = None) -> JobList:
        """A page of jobs, newest first (``limit`` 1–100, default 20)."""
        page = self._client._run(Ops.list_jobs(JobList, limit, starting_after))
        for job in page.data:
            job._bind(self._client)
        return page

    def iter(self, *, page_size: int = DEFAULT_JOBS_PAGE) -> Iterator[Job]:
        """Every job of the account, newest first, fetched ``page_size`` at a time."""
        after: str | None = None
        while True:
            page = self.list(limit=page_size, starting_after=after)
            yield from page.data
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    def cancel(self, job_id: str) -> Job:
        return self._client._run(Ops.cancel_job(job_id, Job))._bind(self._client)


class WebhooksResource:
    def __init__(self, client: AltText) -> None:
        self._client = client

    def secret(self) -> WebhookSecret:
        """The secret that signs job webhooks (verify with any Standard Webhooks library)."""
        return self._client._run(Ops.get("/webhooks/secret", WebhookSecret))

    def rotate_secret(self) -> WebhookSecret:
        """A new secret; the previous one keeps signing too for 24 hours."""
        op = Ops.post("/webhooks/secret/rotate", WebhookSecret, None, idempotent=False)
        return self._client._run(op)

    def deliveries(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> WebhookDeliveryList:
        """Delivery attempts, newest first (never bodies)."""
        params = page_params(limit, starting_after)
        return self._client._run(Ops.get("/webhooks/deliveries", WebhookDeliveryList, params))


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
        self.jobs = AsyncJobsResource(self)
        self.webhooks = AsyncWebhooksResource(self)

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


class AsyncJob(_LiveJob):
    """The asyncio twin of ``Job``: the same fields and methods, awaited; ``results()`` is
    an async iterator."""

    _client: AsyncAltText | None = PrivateAttr(default=None)

    def _bind(self, client: AsyncAltText) -> AsyncJob:
        self._client = client
        return self

    @property
    def _api(self) -> AsyncAltText:
        if self._client is None:
            raise self._unbound()
        return self._client

    async def refresh(self) -> AsyncJob:
        self._take(await self._api._run(Ops.get_job(self.id, JobInfo)))
        return self

    async def wait(
        self,
        *,
        progress: Callable[[AsyncJob], Any] | None = None,
        poll_interval: float = 1.0,
        timeout: float | None = None,
        until_paused: bool = False,
    ) -> AsyncJob:
        """As ``Job.wait``; ``progress`` may be a plain function or a coroutine function."""
        waiting = Waiting(poll_interval, timeout, until_paused)
        while True:
            await self.refresh()
            if progress is not None:
                called = progress(self)
                if inspect.isawaitable(called):
                    await called
            delay = waiting.after_poll(self)
            if delay is None:
                return self
            await asyncio.sleep(delay)

    async def results(self, *, page_size: int = DEFAULT_RESULTS_PAGE) -> AsyncIterator[JobResult]:
        after: str | None = None
        while True:
            page = await self.results_page(limit=page_size, starting_after=after)
            for result in page.data:
                yield result
            if not page.has_more or not page.data:
                return
            after = page.data[-1].item_id

    async def results_page(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> JobResultList:
        return await self._api._run(Ops.job_results(self.id, limit, starting_after))

    async def results_csv(self) -> str:
        return await self._api._run(Ops.job_results_csv(self.id))

    async def cancel(self) -> AsyncJob:
        self._take(await self._api._run(Ops.cancel_job(self.id, JobInfo)))
        return self


class AsyncJobList(_Model):
    object: str = "list"
    data: list[AsyncJob]
    has_more: bool


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


class AsyncJobsResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def create(
        self,
        items: Iterable[JobItemInput] | None = None,
        *,
        source: str | None = None,
        defaults: Mapping[str, Any] | None = None,
        overwrite: bool = False,
        max_pages: int | None = None,
        webhook_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> AsyncJob:
        """Start a bulk job (see ``AltText.jobs.create``)."""
        op = Ops.create_job(
            AsyncJob, items, source, defaults, overwrite, max_pages, webhook_url, idempotency_key
        )
        return (await self._client._run(op))._bind(self._client)

    async def get(self, job_id: str) -> AsyncJob:
        return (await self._client._run(Ops.get_job(job_id, AsyncJob)))._bind(self._client)

    async def list(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> AsyncJobList:
        page = await self._client._run(Ops.list_jobs(AsyncJobList, limit, starting_after))
        for job in page.data:
            job._bind(self._client)
        return page

    async def iter(self, *, page_size: int = DEFAULT_JOBS_PAGE) -> AsyncIterator[AsyncJob]:
        after: str | None = None
        while True:
            page = await self.list(limit=page_size, starting_after=after)
            for job in page.data:
                yield job
            if not page.has_more or not page.data:
                return
            after = page.data[-1].id

    async def cancel(self, job_id: str) -> AsyncJob:
        return (await self._client._run(Ops.cancel_job(job_id, AsyncJob)))._bind(self._client)


class AsyncWebhooksResource:
    def __init__(self, client: AsyncAltText) -> None:
        self._client = client

    async def secret(self) -> WebhookSecret:
        return await self._client._run(Ops.get("/webhooks/secret", WebhookSecret))

    async def rotate_secret(self) -> WebhookSecret:
        op = Ops.post("/webhooks/secret/rotate", WebhookSecret, None, idempotent=False)
        return await self._client._run(op)

    async def deliveries(
        self, *, limit: int | None = None, starting_after: str | None = None
    ) -> WebhookDeliveryList:
        params = page_params(limit, starting_after)
        return await self._client._run(Ops.get("/webhooks/deliveries", WebhookDeliveryList, params))
