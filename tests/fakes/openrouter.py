"""A fake OpenRouter: a real HTTP server on 127.0.0.1 that behaves like the documented API.

It validates requests the way OpenRouter does (auth, model ids, ``provider`` keys, message and
image shape), walks the ``models`` fallback chain, answers with usage and cost, and records
every request so tests can assert what the client sent. Tests script it per call::

    with run_fake_openrouter() as fake:
        fake.enqueue(Status(429, retry_after=2), Reply("A red bicycle leaning on a wall."))
        fake.fail_model("google/gemini-2.5-flash-lite", code=503)   # forces a fallback
        fake.respond_with(lambda body, model: Reply("…") if model == "…" else None)
        ...
        assert fake.chat_requests[0].json["provider"]["data_collection"] == "deny"

With an empty script it answers plausibly: JSON satisfying the requested ``json_schema``, or a
plain sentence. The server runs in a background thread with its own event loop; all state is
guarded by one lock, so tests read it from any thread. Random faults per model (5xx, 429, hangs,
errors inside 200, broken JSON, slow drips) come from ``tests/fakes/faulty_openrouter.py``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import io
import json
import re
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from PIL import Image
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tests.fakes.server import serve_in_thread, serve_tls_in_thread
from tests.fakes.tls import TlsMaterial

DEFAULT_API_KEY = "sk-or-v1-fake-0123456789abcdef0123456789abcdef"
DEFAULT_ALT_TEXT = "Tabby cat asleep on a sunlit windowsill."
TEXT_ONLY_MODEL = "meta-llama/llama-3.1-8b-instruct"

_PROVIDER_KEYS = frozenset(
    {
        "allow_fallbacks",
        "require_parameters",
        "data_collection",
        "zdr",
        "enforce_distillable_text",
        "order",
        "only",
        "ignore",
        "quantizations",
        "sort",
        "max_price",
        "preferred_min_throughput",
        "preferred_max_latency",
    }
)
_ROLES = frozenset({"system", "developer", "user", "assistant", "tool"})
_DATA_URI = re.compile(r"^data:(?P<mime>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)$", re.DOTALL)
_LANGUAGE_TAG = re.compile(r"^[a-z]{2,3}(-[A-Za-z0-9]{2,8})*$")
_STRUCTURED = ("response_format", "structured_outputs")
_COMMON_PARAMS = ["max_tokens", "temperature", "top_p", "stop", "seed"]


def _model(
    model_id: str,
    name: str,
    prompt: str,
    completion: str,
    *,
    image: bool = True,
    structured: bool = True,
    provider: str = "Google",
) -> dict[str, Any]:
    inputs = ["text", "image"] if image else ["text"]
    return {
        "id": model_id,
        "canonical_slug": model_id,
        "name": name,
        "created": 1_740_000_000,
        "context_length": 131_072,
        "architecture": {
            "modality": "text+image->text" if image else "text->text",
            "input_modalities": inputs,
            "output_modalities": ["text"],
            "tokenizer": "Other",
        },
        "pricing": {"prompt": prompt, "completion": completion, "image": "0", "request": "0"},
        "top_provider": {"context_length": 131_072, "is_moderated": False},
        "supported_parameters": _COMMON_PARAMS + (list(_STRUCTURED) if structured else []),
        "_provider": provider,  # stripped from /models; who "answers" for this model
    }


CATALOGUE: list[dict[str, Any]] = [
    _model(
        "google/gemini-2.5-flash-lite", "Google: Gemini 2.5 Flash Lite", "0.0000001", "0.0000004"
    ),
    _model(
        "qwen/qwen2.5-vl-72b-instruct",
        "Qwen: Qwen2.5 VL 72B Instruct",
        "0.00000025",
        "0.00000075",
        provider="Nebius",
    ),
    _model(
        "qwen/qwen2.5-vl-32b-instruct",
        "Qwen: Qwen2.5 VL 32B Instruct",
        "0.00000005",
        "0.00000022",
        provider="Chutes",
    ),
    _model(
        "qwen/qwen-2.5-vl-7b-instruct",
        "Qwen: Qwen2.5-VL 7B Instruct",
        "0.0000002",
        "0.0000002",
        structured=False,
        provider="Hyperbolic",
    ),
    _model(
        TEXT_ONLY_MODEL,
        "Meta: Llama 3.1 8B Instruct",
        "0.00000002",
        "0.00000003",
        image=False,
        provider="DeepInfra",
    ),
]


# -- scriptable behaviours (one per chat-completions call, in order) -----------------------------


@dataclass(frozen=True)
class Reply:
    """A normal answer. ``content=None``: the default (schema-shaped JSON or plain text).
    ``parts`` sends content as a list of text parts instead of a string."""

    content: str | None = None
    model: str | None = None
    finish_reason: str = "stop"
    provider: str | None = None
    parts: tuple[str, ...] | None = None
    # Leave ``usage.cost`` out, as an OpenAI-compatible server (not OpenRouter) would.
    omit_cost: bool = False


@dataclass(frozen=True)
class Status:
    """An HTTP error in OpenRouter's shape. ``raw`` replaces the body verbatim (not JSON)."""

    code: int
    message: str | None = None
    retry_after: str | float | None = None
    metadata: dict[str, Any] | None = None
    raw: str | None = None


ErrorForm = Literal[
    "error_body",  # {"error": {...}} and no choices
    "choice_error",  # choices[0].finish_reason == "error" with choices[0].error
    "error_and_choice",  # top-level error plus a choice finishing with "error" (stream-like)
    "empty",  # content ""
    "whitespace",  # content "  \n "
    "null_content",  # content null
    "length",  # finish_reason "length", content cut mid-sentence
]


@dataclass(frozen=True)
class ErrorIn200:
    form: ErrorForm
    code: int = 502
    message: str = "Provider returned error"


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds`` before doing ``then`` (the client may give up first)."""

    seconds: float
    then: Behaviour = field(default_factory=Reply)


@dataclass(frozen=True)
class RejectResponseFormat:
    """400 like a provider refusing ``response_format``; without it, a normal answer."""

    message: str = "Invalid parameter: 'response_format' of type 'json_schema' is not supported."


Behaviour = Reply | Status | ErrorIn200 | Slow | RejectResponseFormat
# Answers a call the script leaves unanswered: (request body, first model of its chain) ->
# a behaviour, or None for the default answer.
Responder = Callable[[dict[str, Any], str], Behaviour | None]
# Asked for each model the chain reaches whether a fault replaces that model's answer:
# (fake, request body, model) -> (the response, whether OpenRouter moves on to the next model
# of the chain), or None. ``tests/fakes/faulty_openrouter.py`` provides one.
FaultHook = Callable[["FakeOpenRouter", dict[str, Any], str], "tuple[Response, bool] | None"]


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str  # relative to base_url, e.g. "/chat/completions"
    query: dict[str, str]
    headers: dict[str, str]  # lower-case names
    json: Any
    http_version: str = "1.1"  # "2" when the call came over HTTP/2
    peer: str = ""  # the client's address and port: one per connection


@dataclass(frozen=True)
class ReceivedImage:
    """An image the fake decoded from a data URI (kept in memory only, for assertions)."""

    mime: str
    data: bytes
    format: str | None
    size: tuple[int, int]
    exif_tags: int
    has_gps: bool
    info_keys: tuple[str, ...]


class _Reject(Exception):
    def __init__(self, code: int, message: str, metadata: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code, self.message, self.metadata = code, message, metadata


def _error(
    code: int, message: str, metadata: dict[str, Any] | None = None, retry_after: Any = None
) -> JSONResponse:
    error: dict[str, Any] = {"code": code, "message": message}
    if metadata is not None:
        error["metadata"] = metadata
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return JSONResponse({"error": error}, status_code=code, headers=headers)


def example_for_schema(schema: Any, name: str = "") -> Any:
    """A plausible value satisfying a (strict, simple) JSON schema: enough for alt-text shapes."""
    if not isinstance(schema, dict):
        return None
    plausible: dict[str, Any] = {
        "alt_text": DEFAULT_ALT_TEXT,
        "role": "informative",
        "language": "en",
        "decorative": False,
    }
    if schema.get("enum"):
        enum = schema["enum"]
        return plausible[name] if plausible.get(name) in enum else enum[0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if schema.get(key):
            options = [o for o in schema[key] if isinstance(o, dict) and o.get("type") != "null"]
            if name in plausible or not any(o.get("type") == "null" for o in schema[key]):
                return example_for_schema((options or schema[key])[0], name)
            return None
    kind = schema.get("type")
    if isinstance(kind, list):
        if "null" in kind and name not in plausible:
            return None
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props = schema.get("properties") or {}
        wanted = schema.get("required") or list(props)
        return {key: example_for_schema(props.get(key, {}), key) for key in wanted}
    if kind == "array":
        return []
    if kind == "boolean":
        return bool(plausible.get(name, False))
    if kind == "integer":
        return max(0, int(schema.get("minimum", 0)))
    if kind == "number":
        return float(schema.get("minimum", 0))
    if kind == "string":
        # Per-language properties (alt_texts: {"en": ..., "de": ...}) get the alt text too.
        if _LANGUAGE_TAG.match(name):
            return DEFAULT_ALT_TEXT
        return plausible.get(name, "")
    return None


def _decode_image(url: str) -> ReceivedImage | None:
    """Decode a data URI like OpenRouter would before handing it on; raise on garbage."""
    if not url.startswith("data:"):
        if url.startswith(("https://", "http://")):
            return None
        raise _Reject(400, "Invalid image URL", {"error_type": "invalid_image"})
    match = _DATA_URI.match(url)
    if not match or not match["mime"].startswith("image/"):
        raise _Reject(400, "Invalid image data URI", {"error_type": "invalid_image"})
    try:
        data = base64.b64decode(match["data"], validate=True)
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            exif = img.getexif()
            gps = bool(exif.get_ifd(0x8825)) or 0x8825 in exif
            return ReceivedImage(
                mime=match["mime"],
                data=data,
                format=img.format,
                size=img.size,
                exif_tags=len(exif),
                has_gps=gps,
                info_keys=tuple(sorted(str(k) for k in img.info)),
            )
    except (binascii.Error, ValueError, OSError, Image.DecompressionBombError):
        raise _Reject(
            400,
            "Provided image is not valid or could not be decoded",
            {"error_type": "invalid_image"},
        ) from None


class FakeOpenRouter:
    """State and routes of the fake. Build it with ``run_fake_openrouter()``."""

    def __init__(self, api_key: str = DEFAULT_API_KEY) -> None:
        self.api_key = api_key
        self.base_url = ""  # set once the server listens
        self._lock = threading.Lock()
        self._catalogue = {m["id"]: m for m in CATALOGUE}
        self.reset()
        self.app = Starlette(
            routes=[
                Route("/api/v1/chat/completions", self._chat, methods=["POST"]),
                Route("/api/v1/models", self._models, methods=["GET"]),
                Route("/api/v1/generation", self._generation, methods=["GET"]),
                Route("/api/v1/key", self._key, methods=["GET"]),
            ]
        )

    # -- test-facing API ---------------------------------------------------------------------

    def reset(self) -> None:
        """Forget script, records and failures (call between tests sharing one server)."""
        with self._lock:
            self._script: deque[Behaviour] = deque()
            self._requests: list[RecordedRequest] = []
            self._images: list[ReceivedImage] = []
            self._failing: dict[str, tuple[int, str, int | None]] = {}
            self._generations: dict[str, dict[str, Any]] = {}
            self._generation_misses: set[str] = set()
            self._spent = 0.0
            self._responder: Responder | None = None
            self._fault_hook: FaultHook | None = None
            self.models_status: int | None = None  # e.g. 500 to break GET /models

    def enqueue(self, *behaviours: Behaviour) -> None:
        """Append behaviours; each chat call takes the next one (default answer when empty)."""
        with self._lock:
            self._script.extend(behaviours)

    def script(self, *behaviours: Behaviour) -> None:
        """Replace the queued behaviours."""
        with self._lock:
            self._script = deque(behaviours)

    def respond_with(self, responder: Responder | None) -> None:
        """Answer every call the script leaves unanswered with ``responder(body, model)``
        (a behaviour, or None for the default); e.g. a different answer per model."""
        with self._lock:
            self._responder = responder

    def fail_model(
        self, model: str, code: int = 503, message: str | None = None, times: int | None = None
    ) -> None:
        """Make ``model`` fail (``times`` calls, or always) so the ``models`` chain falls back."""
        with self._lock:
            self._failing[model] = (code, message or f"{model} is temporarily unavailable", times)

    def default_answer(self, body: dict[str, Any], model: str) -> Response:
        """What ``model`` answers ``body`` when nothing is scripted (a fault may mangle it)."""
        return self._reply(Reply(), body, model)

    def set_fault_hook(self, hook: FaultHook | None) -> None:
        """Let ``hook`` replace the answer of a model the chain reaches (None: no faults)."""
        with self._lock:
            self._fault_hook = hook

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._lock:
            return list(self._requests)

    @property
    def chat_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.path == "/chat/completions"]

    @property
    def images(self) -> list[ReceivedImage]:
        with self._lock:
            return list(self._images)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._script)

    # -- routes ------------------------------------------------------------------------------

    async def _record(self, request: Request) -> Any:
        raw = await request.body()
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        with self._lock:
            self._requests.append(
                RecordedRequest(
                    method=request.method,
                    path=request.url.path.removeprefix("/api/v1"),
                    query=dict(request.query_params),
                    headers={k.lower(): v for k, v in request.headers.items()},
                    json=parsed,
                    http_version=str(request.scope.get("http_version", "1.1")),
                    peer="{}:{}".format(*(request.scope.get("client") or ("", ""))),
                )
            )
        return parsed

    def _auth_error(self, request: Request) -> JSONResponse | None:
        auth = request.headers.get("authorization", "")
        if not auth.startswith("Bearer "):
            return _error(401, "No auth credentials found")
        if auth.removeprefix("Bearer ") != self.api_key:
            return _error(401, "User not found.")
        return None

    async def _chat(self, request: Request) -> Response:
        body = await self._record(request)
        if (denied := self._auth_error(request)) is not None:
            return denied
        try:
            if not isinstance(body, dict):
                raise _Reject(400, "Invalid JSON body")
            chain = self._validate(body)
        except _Reject as bad:
            return _error(bad.code, bad.message, bad.metadata)
        with self._lock:
            scripted = self._script.popleft() if self._script else None
            responder = self._responder
        if scripted is None and responder is not None:
            scripted = responder(body, chain[0])
        behaviour: Behaviour = scripted if scripted is not None else Reply()
        return await self._perform(behaviour, body, chain)

    async def _perform(
        self, behaviour: Behaviour, body: dict[str, Any], chain: list[str]
    ) -> Response:
        if isinstance(behaviour, Slow):
            await asyncio.sleep(behaviour.seconds)
            return await self._perform(behaviour.then, body, chain)
        if isinstance(behaviour, Status):
            if behaviour.raw is not None:
                return Response(behaviour.raw, status_code=behaviour.code, media_type="text/html")
            return _error(
                behaviour.code,
                behaviour.message or f"Scripted error {behaviour.code}",
                behaviour.metadata,
                behaviour.retry_after,
            )
        if isinstance(behaviour, RejectResponseFormat):
            if "response_format" in body:
                return _error(400, behaviour.message, {"provider_name": "Scripted"})
            return await self._perform(Reply(), body, chain)
        answering = self._route(body, chain)
        if isinstance(answering, Response):
            return answering
        if isinstance(behaviour, ErrorIn200):
            return self._error_in_200(behaviour, answering)
        return self._reply(behaviour, body, answering)

    def _validate(self, body: dict[str, Any]) -> list[str]:
        models = body.get("models")
        chain: list[str] = []
        if models is not None:
            if not isinstance(models, list) or not all(isinstance(m, str) for m in models):
                raise _Reject(400, "'models' must be an array of model IDs")
            chain.extend(models)
        if isinstance(body.get("model"), str):
            chain.insert(0, body["model"])
        if not chain:
            raise _Reject(400, "No models provided")
        for model in chain:
            if model not in self._catalogue:
                raise _Reject(400, f"{model} is not a valid model ID")
        prefs = body.get("provider")
        if prefs is not None:
            if not isinstance(prefs, dict):
                raise _Reject(400, "'provider' must be an object")
            unknown = sorted(set(prefs) - _PROVIDER_KEYS)
            if unknown:
                raise _Reject(400, f"Unrecognized key(s) in provider: {', '.join(unknown)}")
            if prefs.get("data_collection", "allow") not in ("allow", "deny"):
                raise _Reject(400, "provider.data_collection must be 'allow' or 'deny'")
        max_tokens = body.get("max_tokens")
        if max_tokens is not None and (not isinstance(max_tokens, int) or max_tokens < 1):
            raise _Reject(400, "max_tokens must be a positive integer")
        temperature = body.get("temperature")
        if temperature is not None and (
            not isinstance(temperature, int | float) or not 0 <= temperature <= 2
        ):
            raise _Reject(400, "temperature must be between 0 and 2")
        self._validate_format(body.get("response_format"))
        self._validate_messages(body.get("messages"))
        return chain

    @staticmethod
    def _validate_format(fmt: Any) -> None:
        if fmt is None:
            return
        if not isinstance(fmt, dict) or fmt.get("type") not in (
            "text",
            "json_object",
            "json_schema",
        ):
            raise _Reject(400, "Invalid response_format")
        if fmt["type"] == "json_schema":
            spec = fmt.get("json_schema")
            if (
                not isinstance(spec, dict)
                or not isinstance(spec.get("name"), str)
                or not isinstance(spec.get("schema"), dict)
            ):
                raise _Reject(400, "response_format.json_schema needs a name and a schema")

    def _validate_messages(self, messages: Any) -> None:
        if not isinstance(messages, list) or not messages:
            raise _Reject(400, 'Input required: specify "prompt" or "messages"')
        images: list[ReceivedImage] = []
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in _ROLES:
                raise _Reject(400, "Each message needs a valid role")
            content = message.get("content")
            if isinstance(content, str):
                continue
            if not isinstance(content, list) or not content:
                raise _Reject(400, "Message content must be a string or an array of parts")
            for part in content:
                if not isinstance(part, dict):
                    raise _Reject(400, "Invalid content part")
                if part.get("type") == "text" and isinstance(part.get("text"), str):
                    continue
                image_url = part.get("image_url")
                if (
                    part.get("type") == "image_url"
                    and isinstance(image_url, dict)
                    and isinstance(image_url.get("url"), str)
                ):
                    received = _decode_image(image_url["url"])
                    if received is not None:
                        images.append(received)
                    continue
                raise _Reject(400, "Invalid content part")
        with self._lock:
            self._images.extend(images)

    def _route(self, body: dict[str, Any], chain: list[str]) -> str | Response:
        """Walk the chain like OpenRouter: the first model that can serve answers."""
        prefs = body.get("provider") or {}
        wants_params = bool(prefs.get("require_parameters")) and "response_format" in body
        has_image = any(
            isinstance(p, dict) and p.get("type") == "image_url"
            for m in body["messages"]
            if isinstance(m.get("content"), list)
            for p in m["content"]
        )
        last: Response | None = None
        for model in chain:
            info = self._catalogue[model]
            with self._lock:
                failing = self._failing.get(model)
                if failing is not None and failing[2] is not None:
                    left = failing[2] - 1
                    if left <= 0:
                        del self._failing[model]
                    else:
                        self._failing[model] = (failing[0], failing[1], left)
            if failing is not None:
                last = _error(failing[0], failing[1], {"provider_name": info["_provider"]})
            elif has_image and "image" not in info["architecture"]["input_modalities"]:
                last = _error(404, "No endpoints found that support image input")
            elif wants_params and "response_format" not in info["supported_parameters"]:
                last = _error(404, "No endpoints found that can handle the requested parameters.")
            else:
                with self._lock:
                    hook = self._fault_hook
                fault = hook(self, body, model) if hook is not None else None
                if fault is None:
                    return model
                last, moves_on = fault
                if not moves_on:
                    return last
        assert last is not None
        return last

    def _reply(self, behaviour: Reply, body: dict[str, Any], answering: str) -> Response:
        content = behaviour.content if behaviour.content is not None else self._default(body)
        message_content: Any = (
            list({"type": "text", "text": t} for t in behaviour.parts)
            if behaviour.parts is not None
            else content
        )
        text_len = len(content) if behaviour.parts is None else sum(map(len, behaviour.parts))
        model = behaviour.model or answering
        return self._completion(
            body,
            model,
            message_content,
            behaviour.finish_reason,
            text_len,
            behaviour.provider,
            omit_cost=behaviour.omit_cost,
        )

    def _completion(
        self,
        body: dict[str, Any],
        model: str,
        content: Any,
        finish: str,
        text_len: int,
        provider: str | None = None,
        extra_choice: dict[str, Any] | None = None,
        extra_body: dict[str, Any] | None = None,
        *,
        omit_cost: bool = False,
    ) -> JSONResponse:
        gen_id = f"gen-{int(time.time())}-{uuid.uuid4().hex[:20]}"
        info = self._catalogue.get(model, self._catalogue[CATALOGUE[0]["id"]])
        prompt_chars = sum(
            len(p.get("text", "")) if isinstance(p, dict) else 0
            for m in body["messages"]
            for p in (m["content"] if isinstance(m["content"], list) else [{"text": m["content"]}])
        )
        images = sum(
            1
            for m in body["messages"]
            if isinstance(m["content"], list)
            for p in m["content"]
            if p.get("type") == "image_url"
        )
        prompt_tokens = prompt_chars // 4 + 258 * images
        completion_tokens = max(1, text_len // 4)
        cost = prompt_tokens * float(info["pricing"]["prompt"]) + completion_tokens * float(
            info["pricing"]["completion"]
        )
        choice: dict[str, Any] = {
            "index": 0,
            "logprobs": None,
            "finish_reason": finish,
            "native_finish_reason": "STOP" if finish == "stop" else finish.upper(),
            "message": {"role": "assistant", "content": content, "refusal": None},
            **(extra_choice or {}),
        }
        payload = {
            "id": gen_id,
            "provider": provider or info["_provider"],
            "model": model,
            "object": "chat.completion",
            "created": int(time.time()),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                "cost": cost,
            },
            **(extra_body or {}),
        }
        if omit_cost:
            del payload["usage"]["cost"]
        with self._lock:
            self._spent += cost
            self._generations[gen_id] = {
                "id": gen_id,
                "model": model,
                "provider_name": payload["provider"],
                "total_cost": cost,
                "tokens_prompt": prompt_tokens,
                "tokens_completion": completion_tokens,
                "native_tokens_prompt": prompt_tokens,
                "native_tokens_completion": completion_tokens,
                "finish_reason": finish,
                "latency": 5,
                "generation_time": 5,
                "streamed": False,
                "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            }
        return JSONResponse(payload, headers={"X-Generation-Id": gen_id})

    def _error_in_200(self, behaviour: ErrorIn200, model: str) -> Response:
        error = {
            "code": behaviour.code,
            "message": behaviour.message,
            "metadata": {"provider_name": self._catalogue[model]["_provider"]},
        }
        form = behaviour.form
        if form == "error_body":
            return JSONResponse({"error": error})
        body = {"messages": [{"role": "user", "content": "x"}]}
        if form in ("choice_error", "error_and_choice"):
            return self._completion(
                body,
                model,
                "",
                "error",
                0,
                extra_choice={"error": error},
                extra_body={"error": error} if form == "error_and_choice" else None,
            )
        if form == "length":
            return self._completion(body, model, "Tabby cat asleep on a sunl", "length", 25)
        content = {"empty": "", "whitespace": "  \n ", "null_content": None}[form]
        return self._completion(body, model, content, "stop", 0)

    @staticmethod
    def _default(body: dict[str, Any]) -> str:
        fmt = body.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") == "json_schema":
            return json.dumps(example_for_schema(fmt["json_schema"]["schema"]))
        if isinstance(fmt, dict) and fmt.get("type") == "json_object":
            return json.dumps({"alt_text": DEFAULT_ALT_TEXT})
        return DEFAULT_ALT_TEXT

    async def _models(self, request: Request) -> Response:
        await self._record(request)
        with self._lock:
            broken = self.models_status
        if broken is not None:
            return _error(broken, "Scripted model listing failure")
        data = [{k: v for k, v in m.items() if not k.startswith("_")} for m in CATALOGUE]
        return JSONResponse({"data": data})

    async def _generation(self, request: Request) -> Response:
        await self._record(request)
        if (denied := self._auth_error(request)) is not None:
            return denied
        gen_id = request.query_params.get("id", "")
        with self._lock:
            data = self._generations.get(gen_id)
            # Like OpenRouter, a generation is not queryable for a moment after it completes.
            first_look = data is not None and gen_id not in self._generation_misses
            if first_look:
                self._generation_misses.add(gen_id)
        if data is None or first_look:
            return _error(404, f"Generation {gen_id} not found")
        return JSONResponse({"data": data})

    async def _key(self, request: Request) -> Response:
        await self._record(request)
        if (denied := self._auth_error(request)) is not None:
            return denied
        with self._lock:
            spent = self._spent
        return JSONResponse(
            {
                "data": {
                    "label": f"{self.api_key[:12]}...",
                    "limit": None,
                    "limit_remaining": None,
                    "usage": spent,
                    "is_free_tier": False,
                    "rate_limit": {"requests": -1, "interval": "10s"},
                }
            }
        )


@contextlib.contextmanager
def run_fake_openrouter(
    api_key: str = DEFAULT_API_KEY, *, tls: TlsMaterial | None = None
) -> Iterator[FakeOpenRouter]:
    """Serve a ``FakeOpenRouter`` on a free 127.0.0.1 port for the duration of the block; with
    ``tls``, over HTTPS offering HTTP/2, as openrouter.ai does."""
    fake = FakeOpenRouter(api_key)
    if tls is None:
        with serve_in_thread(fake.app, "fake OpenRouter") as port:
            fake.base_url = f"http://127.0.0.1:{port}/api/v1"
            yield fake
        return
    served = serve_tls_in_thread(
        fake.app, "fake OpenRouter (TLS)", str(tls.cert_file), str(tls.key_file)
    )
    with served as port:
        fake.base_url = f"https://127.0.0.1:{port}/api/v1"
        yield fake
