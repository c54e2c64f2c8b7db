"""What the sync and async clients share: request building, response parsing, retry decisions.

The clients differ only in how they send a request and how they sleep; everything else is
here, once.
"""

from __future__ import annotations

import base64
import json
import mimetypes
import os
import random
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Generic, TypeVar
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from alttext_client._version import __version__
from alttext_client.errors import (
    AltTextError,
    APIConnectionError,
    APITimeoutError,
    JobTimeoutError,
    from_response,
    parse_retry_after,
    problem_of,
)
from alttext_client.types import AltTextResult, Batch, JobInfo, JobItem, JobResultList

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BUDGET = 120.0
MAX_BATCH_ITEMS = 50
MAX_JOB_ITEMS = 10_000
DEFAULT_RESULTS_PAGE = 100  # results per request when iterating a job's results
DEFAULT_JOBS_PAGE = 100  # jobs per request when iterating the account's jobs
# Retry-After and backoff: never wait longer than this once.
MAX_SINGLE_WAIT = 60.0
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0

ImageInput = str | os.PathLike[str] | bytes | bytearray | memoryview | IO[bytes]
"""A path (str or ``Path``), raw bytes, a binary file object, an ``http(s)://`` URL, or a
``data:image/...;base64,`` URI."""

_OPTION_NAMES = (
    "context",
    "role",
    "link_target",
    "language",
    "max_length",
    "keywords",
    "long_description",
    "model",
)


@dataclass(frozen=True)
class Image:
    """An image ready to send: bytes (with a file name and type) or a URL."""

    data: bytes | None = None
    filename: str = "image"
    content_type: str = "application/octet-stream"
    url: str | None = None
    data_uri: str | None = None


def load_image(image: ImageInput) -> Image:
    """Read ``image`` once, into memory (a retry must resend the same bytes)."""
    if isinstance(image, str):
        lowered = image[:8].lower()
        if lowered.startswith(("http://", "https://")):
            return Image(url=image)
        if lowered.startswith("data:"):
            return Image(data_uri=image)
        return _from_path(Path(image))
    if isinstance(image, os.PathLike):
        return _from_path(Path(os.fspath(image)))
    if isinstance(image, (bytes, bytearray, memoryview)):
        data = bytes(image)
        return Image(data=data, filename="image", content_type=_sniff(data))
    if hasattr(image, "read"):
        data = image.read()
        if not isinstance(data, bytes):
            raise TypeError("open the image file in binary mode ('rb')")
        name = os.path.basename(str(getattr(image, "name", "") or "")) or "image"
        return Image(data=data, filename=name, content_type=_content_type(name, data))
    raise TypeError(
        "image must be a path, bytes, a binary file object or an http(s) URL, "
        f"not {type(image).__name__}"
    )


def _from_path(path: Path) -> Image:
    data = path.read_bytes()
    return Image(data=data, filename=path.name, content_type=_content_type(path.name, data))


def _content_type(name: str, data: bytes) -> str:
    guessed = mimetypes.guess_type(name)[0]
    return guessed if guessed and guessed.startswith("image/") else _sniff(data)


_MAGIC = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF8", "image/gif"),
    (b"BM", "image/bmp"),
)


def _sniff(data: bytes) -> str:
    for magic, kind in _MAGIC:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if data[4:12] in (b"ftypavif", b"ftypheic", b"ftypheix", b"ftypmif1"):
        return "image/avif" if data[8:12] == b"avif" else "image/heic"
    return "application/octet-stream"


def options_of(values: Mapping[str, Any]) -> dict[str, Any]:
    """The options the caller set (None means "the service's default")."""
    return {k: v for k, v in values.items() if k in _OPTION_NAMES and v is not None}


def _form_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return json.dumps(list(value))
    return str(value)


# -- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str  # under /v1
    params: dict[str, str] | None = None
    json: Any = None
    form: dict[str, str] | None = None
    files: dict[str, tuple[str, bytes, str]] | None = None
    # The service honours an Idempotency-Key here: safe to retry even if it may have run.
    idempotent: bool = True
    idempotency_key: str | None = None

    def build(self, http: httpx.Client | httpx.AsyncClient, base_url: str) -> httpx.Request:
        headers = {"Idempotency-Key": self.idempotency_key} if self.idempotency_key else None
        return http.build_request(
            self.method,
            f"{base_url}/v1{self.path}",
            params=self.params,
            json=self.json,
            data=self.form,
            files=self.files,
            headers=headers,
        )


@dataclass(frozen=True)
class Operation(Generic[T]):
    request: Request
    parse: Callable[[httpx.Response], T]


def _model_parser(model: type[M]) -> Callable[[httpx.Response], M]:
    def parse(response: httpx.Response) -> M:
        try:
            return model.model_validate_json(response.content)
        except ValueError as exc:
            raise AltTextError(
                f"The service answered {response.status_code} with a body this client cannot "
                f"read as {model.__name__}: {exc}",
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from exc

    return parse


def _no_content(response: httpx.Response) -> None:
    return None


def _text(response: httpx.Response) -> str:
    return response.content.decode("utf-8-sig")


def new_idempotency_key() -> str:
    return str(uuid.uuid4())


def alt_text_request(
    image: ImageInput | None,
    image_url: str | None,
    options: dict[str, Any],
    idempotency_key: str | None,
) -> Request:
    """``POST /v1/alt-text``: multipart for bytes and files, JSON for URLs and data URIs."""
    if (image is None) == (image_url is None):
        raise ValueError("give exactly one of image and image_url")
    loaded = load_image(image) if image is not None else Image(url=image_url)
    key = idempotency_key or new_idempotency_key()
    if loaded.data is not None:
        return Request(
            "POST",
            "/alt-text",
            form={name: _form_value(value) for name, value in options.items()},
            files={"image": (loaded.filename, loaded.data, loaded.content_type)},
            idempotency_key=key,
        )
    body = dict(options)
    if loaded.url is not None:
        body["image_url"] = loaded.url
    else:
        body["image"] = loaded.data_uri
    return Request("POST", "/alt-text", json=body, idempotency_key=key)


def batch_item(index: int, item: Mapping[str, Any] | ImageInput) -> dict[str, Any]:
    """One batch item as JSON; images are sent as base64 (a batch is one JSON body)."""
    fields: dict[str, Any] = dict(item) if isinstance(item, Mapping) else {"image": item}
    fields.setdefault("id", str(index))
    image = fields.pop("image", None)
    if image is not None:
        if "image_url" in fields:
            raise ValueError(f"batch item {fields['id']!r}: give image or image_url, not both")
        loaded = load_image(image)
        if loaded.url is not None:
            fields["image_url"] = loaded.url
        elif loaded.data_uri is not None:
            fields["image"] = loaded.data_uri
        else:
            assert loaded.data is not None
            fields["image"] = base64.b64encode(loaded.data).decode("ascii")
    elif "image_url" not in fields:
        raise ValueError(f"batch item {fields['id']!r} has no image or image_url")
    return {k: v for k, v in fields.items() if v is not None}


def batch_request(
    items: Sequence[Mapping[str, Any] | ImageInput],
    defaults: Mapping[str, Any] | None,
    idempotency_key: str | None,
) -> Request:
    if isinstance(items, (str, bytes)) or not 1 <= len(items) <= MAX_BATCH_ITEMS:
        raise ValueError(f"a batch holds 1 to {MAX_BATCH_ITEMS} items")
    body: dict[str, Any] = {"items": [batch_item(i, item) for i, item in enumerate(items)]}
    if defaults:
        body["defaults"] = options_of(defaults)
    return Request(
        "POST",
        "/alt-text/batch",
        json=body,
        idempotency_key=idempotency_key or new_idempotency_key(),
    )


JobItemInput = str | Mapping[str, Any] | JobItem
"""A job item: an ``http(s)`` image URL, a ``JobItem``, or a mapping with its keys
(``image_url`` and optionally ``id``, ``context``, ``role``, ``link_target``, ``language``)."""


def _is_http_url(value: object) -> bool:
    return isinstance(value, str) and value[:8].lower().startswith(("http://", "https://"))


def job_item(index: int, item: JobItemInput) -> dict[str, Any]:
    """One job item as JSON. A job holds URLs only: the service fetches each image itself."""
    if isinstance(item, JobItem):
        return item.model_dump(exclude_none=True)
    if isinstance(item, str):
        fields: dict[str, Any] = {"image_url": item}
    elif isinstance(item, Mapping):
        fields = {k: _jsonable(v) for k, v in item.items() if v is not None}
    else:
        raise TypeError(
            f"job item {index}: an image URL, a JobItem or a mapping, not {type(item).__name__}"
        )
    if not _is_http_url(fields.get("image_url")):
        raise ValueError(
            f"job item {index}: image_url must be an http(s) URL the service can fetch "
            "(send local files with alt_text.create or alt_text.batch)"
        )
    return fields


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def job_create_request(
    items: Iterable[JobItemInput] | None,
    source: str | None,
    defaults: Mapping[str, Any] | None,
    overwrite: bool,
    max_pages: int | None,
    webhook_url: str | None,
    idempotency_key: str | None,
) -> Request:
    """``POST /v1/jobs``, always with an Idempotency-Key: a retried creation never makes two
    jobs."""
    if (items is None) == (source is None):
        raise ValueError("give exactly one of items and source")
    body: dict[str, Any] = {}
    if items is not None:
        if isinstance(items, (str, bytes, Mapping)):
            raise TypeError("items is a list of image URLs or items, not a single one")
        listed = [job_item(i, item) for i, item in enumerate(items)]
        if not 1 <= len(listed) <= MAX_JOB_ITEMS:
            raise ValueError(f"a job holds 1 to {MAX_JOB_ITEMS} items")
        if max_pages is not None:
            raise ValueError("max_pages is for source jobs (source=url)")
        body["items"] = listed
    else:
        if not _is_http_url(source):
            raise ValueError("source must be the http(s) URL of an HTML page or a sitemap")
        body["source"] = {"url": source}
        if max_pages is not None:
            body["source"]["max_pages"] = max_pages
    if overwrite:
        body["overwrite"] = True
    if defaults:
        # Passed as given (None dropped): the service names any unknown or invalid option.
        body["defaults"] = {k: _jsonable(v) for k, v in defaults.items() if v is not None}
    if webhook_url is not None:
        body["webhook_url"] = webhook_url
    return Request(
        "POST", "/jobs", json=body, idempotency_key=idempotency_key or new_idempotency_key()
    )


def page_params(
    limit: int | None, starting_after: str | None, **extra: str | None
) -> dict[str, str]:
    """``?limit=&starting_after=`` (Stripe-style pages), plus any filters; None is left out."""
    values = {
        "limit": None if limit is None else str(limit),
        "starting_after": starting_after,
        **extra,
    }
    return {k: v for k, v in values.items() if v is not None}


def _job_path(job_id: str, suffix: str = "") -> str:
    if not job_id:
        raise ValueError("job_id is empty")
    return f"/jobs/{quote(job_id, safe='')}{suffix}"


def day(value: date | str | None) -> str | None:
    return value.isoformat() if isinstance(value, date) else value


class Ops:
    """Every endpoint as an Operation: the one definition both clients run."""

    @staticmethod
    def create_alt_text(
        image: ImageInput | None,
        image_url: str | None,
        options: dict[str, Any],
        idempotency_key: str | None,
    ) -> Operation[AltTextResult]:
        request = alt_text_request(image, image_url, options, idempotency_key)
        return Operation(request, _model_parser(AltTextResult))

    @staticmethod
    def batch(
        items: Sequence[Mapping[str, Any] | ImageInput],
        defaults: Mapping[str, Any] | None,
        idempotency_key: str | None,
    ) -> Operation[Batch]:
        return Operation(batch_request(items, defaults, idempotency_key), _model_parser(Batch))

    @staticmethod
    def get(path: str, model: type[M], params: dict[str, str] | None = None) -> Operation[M]:
        return Operation(Request("GET", path, params=params or None), _model_parser(model))

    @staticmethod
    def post(
        path: str,
        model: type[M],
        body: Any,
        *,
        idempotent: bool,
        idempotency_key: str | None = None,
    ) -> Operation[M]:
        key = idempotency_key or (new_idempotency_key() if idempotent else None)
        request = Request("POST", path, json=body, idempotent=idempotent, idempotency_key=key)
        return Operation(request, _model_parser(model))

    @staticmethod
    def delete(path: str, params: dict[str, str] | None = None) -> Operation[None]:
        return Operation(Request("DELETE", path, params=params or None), _no_content)

    # -- bulk jobs: the clients' Job classes are passed in as ``model`` ----------------------

    @staticmethod
    def create_job(
        model: type[M],
        items: Iterable[JobItemInput] | None,
        source: str | None,
        defaults: Mapping[str, Any] | None,
        overwrite: bool,
        max_pages: int | None,
        webhook_url: str | None,
        idempotency_key: str | None,
    ) -> Operation[M]:
        request = job_create_request(
            items, source, defaults, overwrite, max_pages, webhook_url, idempotency_key
        )
        return Operation(request, _model_parser(model))

    @staticmethod
    def get_job(job_id: str, model: type[M]) -> Operation[M]:
        return Ops.get(_job_path(job_id), model)

    @staticmethod
    def cancel_job(job_id: str, model: type[M]) -> Operation[M]:
        # Cancelling twice changes nothing: safe to retry.
        return Operation(Request("DELETE", _job_path(job_id)), _model_parser(model))

    @staticmethod
    def list_jobs(model: type[M], limit: int | None, starting_after: str | None) -> Operation[M]:
        return Ops.get("/jobs", model, page_params(limit, starting_after))

    @staticmethod
    def job_results(
        job_id: str, limit: int | None, starting_after: str | None
    ) -> Operation[JobResultList]:
        params = page_params(limit, starting_after)
        return Ops.get(_job_path(job_id, "/results"), JobResultList, params)

    @staticmethod
    def job_results_csv(job_id: str) -> Operation[str]:
        request = Request("GET", _job_path(job_id, "/results"), params={"format": "csv"})
        return Operation(request, _text)


# -- waiting for a job ----------------------------------------------------------------------------


@dataclass
class Waiting:
    """The decisions of one ``Job.wait``: after each poll, stop (None), or sleep so long, or
    raise ``JobTimeoutError``. A paused job (out of credits) is waited for, as it resumes by
    itself when credits arrive, unless ``until_paused``."""

    poll_interval: float
    timeout: float | None
    until_paused: bool
    started: float = field(default_factory=time.monotonic)

    def __post_init__(self) -> None:
        if not self.poll_interval > 0:
            raise ValueError("poll_interval must be more than 0 seconds")
        if self.timeout is not None and self.timeout < 0:
            raise ValueError("timeout must be None or 0 seconds or more")

    def after_poll(self, job: JobInfo) -> float | None:
        if job.ended or (self.until_paused and job.status == "paused"):
            return None
        if self.timeout is None:
            return self.poll_interval
        left = self.started + self.timeout - time.monotonic()
        if left <= 0:
            raise JobTimeoutError(
                f"job {job.id} is still {job.status} after {self.timeout:g} s "
                f"({job.counts.done} of {job.total} items done)",
                job=job,
            )
        return min(self.poll_interval, left)


# -- retries -------------------------------------------------------------------------------------

_RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504})


@dataclass
class Attempts:
    """The retry decisions of one call. ``after_*`` return the seconds to wait before the next
    attempt, or raise the error to give up with."""

    request: Request
    max_retries: int
    budget_s: float
    started: float = field(default_factory=time.monotonic)
    attempt: int = 0

    def _wait(self, retry_after: float | None) -> float | None:
        """Seconds to wait before the next attempt; None when out of attempts or time."""
        if self.attempt > self.max_retries:
            return None
        if retry_after is not None:
            delay = retry_after
            if delay > MAX_SINGLE_WAIT:
                return None
        else:
            # Exponential backoff with jitter: half fixed, half random.
            ceiling = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (self.attempt - 1))
            delay = ceiling / 2 + random.uniform(0, ceiling / 2)
        if time.monotonic() - self.started + delay > self.budget_s:
            return None
        return delay

    def after_response(self, response: httpx.Response) -> float | None:
        """None: the response is final (a success). A float: retry after so many seconds."""
        self.attempt += 1
        if response.is_success:
            return None
        status = response.status_code
        if self._retryable(status, response):
            delay = self._wait(parse_retry_after(response.headers.get("retry-after")))
            if delay is not None:
                return delay
        raise from_response(response)

    def _retryable(self, status: int, response: httpx.Response) -> bool:
        if status == 409:
            # A duplicate still running may answer 409; a conflicting body never changes.
            return "in_progress" in str(problem_of(response).get("code", ""))
        if status not in _RETRY_STATUSES:
            return False
        # A request the service may have run, without an idempotency key, is retried only when
        # it was rejected before running (429).
        return self.request.idempotent or status == 429

    def after_error(self, exc: httpx.TransportError) -> float:
        self.attempt += 1
        never_sent = isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout))
        if never_sent or self.request.idempotent:
            delay = self._wait(None)
            if delay is not None:
                return delay
        cls = APITimeoutError if isinstance(exc, httpx.TimeoutException) else APIConnectionError
        raise cls(
            f"{type(exc).__name__} talking to the AltText API: {exc}"
            + (f" (after {self.attempt} attempts)" if self.attempt > 1 else "")
        ) from exc


def client_headers(api_key: str) -> dict[str, str]:
    return {
        "Authorization": f"Bearer {api_key}",
        "Accept": "application/json",
        "User-Agent": f"alttext-client-python/{__version__}",
    }


def resolve_config(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    key = api_key or os.environ.get("ALTTEXT_API_KEY")
    if not key:
        raise ValueError("no API key: pass api_key=... or set ALTTEXT_API_KEY")
    url = (base_url or os.environ.get("ALTTEXT_API_URL") or DEFAULT_BASE_URL).rstrip("/")
    url = url.removesuffix("/v1")
    return key, url
