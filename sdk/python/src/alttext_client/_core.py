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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import IO, Any, Generic, TypeVar

import httpx
from pydantic import BaseModel

from alttext_client._version import __version__
from alttext_client.errors import (
    AltTextError,
    APIConnectionError,
    APITimeoutError,
    from_response,
    parse_retry_after,
    problem_of,
)
from alttext_client.types import AltTextResult, Batch

T = TypeVar("T")
M = TypeVar("M", bound=BaseModel)

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 60.0
DEFAULT_MAX_RETRIES = 2
DEFAULT_RETRY_BUDGET = 120.0
MAX_BATCH_ITEMS = 50
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
