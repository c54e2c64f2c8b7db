"""Wire format of OpenAI-compatible chat completions: building the body, reading the answer.

Pure functions without I/O, so the retry policy in ``openrouter.py`` stays readable and every
rule about what counts as a failure sits in one place. OpenRouter's documented behaviour (see
OPENROUTER.md) is the reference; plain OpenAI-compatible servers are a subset of it.
"""

from __future__ import annotations

import base64
import email.utils
import json
import math
import re
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from alttext.describe.errors import (
    AppError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from alttext.describe.providers.base import ModelInfo, ModelReply, ModelRequest

# Statuses worth another try: the same request may succeed a moment later or on another model.
RETRYABLE_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 524, 529})
_UNAVAILABLE_STATUSES = frozenset({429, 503, 529})
_TIMEOUT_STATUSES = frozenset({408, 504, 524})

_MAX_UPSTREAM_MESSAGE = 200
_DATA_URI = re.compile(r"data:[\w.+/-]*;base64,[A-Za-z0-9+/=_-]*")
# Words a server uses when it cannot honour ``response_format`` / structured output.
_FORMAT_HINTS = ("response_format", "json_schema", "structured output", "structured_output")


class AttemptFailed(Exception):
    """One call failed. The retry loop decides whether to try again and what to raise at the end.

    ``final`` is the public error class once retries are exhausted (or at once when not
    ``retryable``). ``format_rejected`` marks a server that refuses ``response_format``;
    ``cut_off`` an answer stopped by ``max_tokens``, with what arrived as ``partial`` (marked
    ``truncated``) so the last try can still yield the alt texts that came whole.
    """

    def __init__(
        self,
        detail: str,
        *,
        retryable: bool,
        final: type[AppError] = UpstreamError,
        retry_after: float | None = None,
        format_rejected: bool = False,
        cut_off: bool = False,
        partial: ModelReply | None = None,
        refused: bool = False,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.retryable = retryable
        self.final = final
        self.retry_after = retry_after
        self.format_rejected = format_rejected
        self.cut_off = cut_off
        self.partial = partial
        self.refused = refused  # a moderation refusal (HTTP 403), told apart in metrics


@dataclass(frozen=True)
class WireOptions:
    """The per-call choices the provider makes on top of the request."""

    model_fields: dict[str, Any]  # {"model": ...} or {"models": [...]}
    provider_prefs: dict[str, Any] | None  # OpenRouter's ``provider`` object, or None
    with_format: bool
    max_tokens: int


def encode_body(request: ModelRequest, options: WireOptions) -> tuple[bytes, dict[str, Any]]:
    """The body as the JSON bytes to send (as httpx's ``json=`` would encode them), and as a
    dict with a stand-in for the image (to look at, never to send).

    The image's base64 (most of the body) is written straight into the bytes: it needs no
    escaping, so only the small rest of the body goes through the JSON encoder, instead of
    the encoder scanning the whole base64 text and copying it into a string and then bytes.
    """
    slot = f"alttext-image-{secrets.token_hex(16)}"  # cannot occur in the rest of the body
    body = build_body(request, options, image_data=slot)
    text = json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    head, found, tail = text.partition(slot)
    if not found or slot in tail:  # not expected; encode it the plain way
        whole = build_body(request, options)
        return json.dumps(
            whole, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        ).encode(), body
    return b"".join((head.encode(), base64.b64encode(request.image), tail.encode())), body


def build_body(
    request: ModelRequest, options: WireOptions, *, image_data: str | None = None
) -> dict[str, Any]:
    """The body as a dict; ``image_data`` stands in for the image's base64 when given."""
    if image_data is None:
        image_data = base64.b64encode(request.image).decode("ascii")
    data_uri = f"data:{request.mime};base64,{image_data}"
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    messages.append(
        {
            "role": "user",
            "content": [
                {"type": "text", "text": request.user},
                {"type": "image_url", "image_url": {"url": data_uri}},
            ],
        }
    )
    body: dict[str, Any] = {
        **options.model_fields,
        "messages": messages,
        "max_tokens": options.max_tokens,
        "temperature": request.temperature,
    }
    if options.with_format and request.json_schema is not None:
        body["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": "alt_text", "strict": True, "schema": request.json_schema},
        }
    if options.provider_prefs is not None:
        prefs = dict(options.provider_prefs)
        if "response_format" in body:
            # Only endpoints that honour the schema; others would silently answer free text.
            prefs["require_parameters"] = True
        body["provider"] = prefs
    return body


def scrub(text: str, secrets: tuple[str, ...] = ()) -> str:
    """Remove image data and secrets from text that may reach a log or an error detail."""
    cleaned = _DATA_URI.sub("data:<image>", text)
    for secret in secrets:
        if secret:
            cleaned = cleaned.replace(secret, "<redacted>")
    return cleaned


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds: delta-seconds or an HTTP date. None when absent or garbled."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return max(0.0, seconds)


def _error_parts(body: Any) -> tuple[int | None, str, dict[str, Any]]:
    """(code, message, metadata) from an OpenAI/OpenRouter error object, tolerating odd shapes."""
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, str):
        return None, error, {}
    if not isinstance(error, dict):
        return None, "", {}
    code = error.get("code")
    message = error.get("message")
    metadata = error.get("metadata")
    return (
        code if isinstance(code, int) and not isinstance(code, bool) else None,
        message if isinstance(message, str) else "",
        metadata if isinstance(metadata, dict) else {},
    )


def _short(message: str) -> str:
    message = " ".join(message.split())
    if len(message) > _MAX_UPSTREAM_MESSAGE:
        return message[: _MAX_UPSTREAM_MESSAGE - 1] + "…"
    return message


def _final_for(code: int | None) -> type[AppError]:
    if code in _UNAVAILABLE_STATUSES:
        return UpstreamUnavailable
    if code in _TIMEOUT_STATUSES:
        return UpstreamTimeout
    return UpstreamError


def status_failure(
    status: int,
    body: Any,
    *,
    label: str,
    retry_after: float | None,
    format_sent: bool,
    routing: str,
) -> AttemptFailed:
    """Classify a non-200 answer. ``routing`` describes our routing policy for 404 details."""
    _, message, metadata = _error_parts(body)
    said = f": {_short(message)}" if message else ""
    lowered = message.lower()
    if format_sent and status == 400 and any(hint in lowered for hint in _FORMAT_HINTS):
        return AttemptFailed(
            f"{label} rejected response_format{said}", retryable=False, format_rejected=True
        )
    if format_sent and status == 404 and "parameter" in lowered:
        # require_parameters filtered out every endpoint: none supports structured output.
        return AttemptFailed(
            f"{label} has no endpoint supporting response_format{said}",
            retryable=False,
            format_rejected=True,
        )
    if status in RETRYABLE_STATUSES:
        return AttemptFailed(
            f"{label} returned HTTP {status}{said}",
            retryable=True,
            final=_final_for(status),
            retry_after=retry_after,
        )
    if status == 401:
        return AttemptFailed(
            f"{label} rejected the service's API key (HTTP 401); the operator must check it",
            retryable=False,
        )
    if status == 403:
        reasons = metadata.get("reasons")
        why = f" (reasons: {', '.join(map(str, reasons))})" if isinstance(reasons, list) else ""
        return AttemptFailed(
            f"{label} refused the request (HTTP 403, moderation){why}{said}",
            retryable=False,
            refused=True,
        )
    if status == 402:
        return AttemptFailed(
            f"{label} account has insufficient credits (HTTP 402); the operator must top it up",
            retryable=False,
            final=UpstreamUnavailable,
        )
    if status == 404:
        return AttemptFailed(
            f"{label} found no endpoint for the model(s) that satisfies the routing policy "
            f"({routing}) (HTTP 404){said}",
            retryable=False,
        )
    kind = metadata.get("error_type")
    typed = f" [{kind}]" if isinstance(kind, str) else ""
    return AttemptFailed(
        f"{label} rejected the request (HTTP {status}){typed}{said}", retryable=False
    )


def _content_text(content: Any) -> str | None:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        # Some servers return content as parts; only text parts can be alt text.
        texts = [
            part["text"]
            for part in content
            if isinstance(part, dict)
            and part.get("type") in (None, "text")
            and isinstance(part.get("text"), str)
        ]
        return "".join(texts)
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_completion(
    body: Any, *, label: str, requested_model: str, generation_header: str | None
) -> ModelReply:
    """Read an HTTP 200 answer, raising ``AttemptFailed`` for each error that hides in one."""
    if not isinstance(body, dict):
        raise AttemptFailed(
            f"{label} returned a response that is not a JSON object", retryable=True
        )
    choices = body.get("choices")
    first = choices[0] if isinstance(choices, list) and choices else None
    if (
        "error" in body
        and body["error"]
        and (not isinstance(first, dict) or first.get("finish_reason") in (None, "error"))
    ):
        code, message, _ = _error_parts(body)
        said = f": {_short(message)}" if message else ""
        raise AttemptFailed(
            f"{label} reported an error inside HTTP 200{said}",
            retryable=True,
            final=_final_for(code),
        )
    if not isinstance(first, dict):
        raise AttemptFailed(f"{label} returned no choices", retryable=True)
    finish = first.get("finish_reason")
    if finish == "error":
        code, message, _ = _error_parts(first)
        said = f": {_short(message)}" if message else ""
        raise AttemptFailed(
            f"{label} stopped the answer with an error{said}",
            retryable=True,
            final=_final_for(code),
        )
    message_obj = first.get("message")
    content = _content_text(message_obj.get("content") if isinstance(message_obj, dict) else None)
    reply = None
    if content is not None and content.strip():
        raw_usage = body.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        model = body.get("model")
        provider = body.get("provider")
        gen_id = body.get("id")
        reply = ModelReply(
            content=content.strip(),
            model=model if isinstance(model, str) and model else requested_model,
            provider=provider if isinstance(provider, str) else None,
            input_tokens=_int(usage.get("prompt_tokens")),
            output_tokens=_int(usage.get("completion_tokens")),
            cost_usd=_number(usage.get("cost")),
            generation_id=gen_id if isinstance(gen_id, str) and gen_id else generation_header,
            truncated=finish == "length",
        )
    if finish == "length":
        raise AttemptFailed(
            f"{label} cut the answer off at max_tokens", retryable=True, cut_off=True, partial=reply
        )
    if reply is None:
        raise AttemptFailed(f"{label} returned an empty answer", retryable=True)
    return reply


def _price(value: Any) -> float | None:
    """OpenRouter prices are decimal strings; "-1" marks a variable price (unknown to us)."""
    try:
        price = float(value)
    except (TypeError, ValueError):
        return None
    return price if price >= 0 and math.isfinite(price) else None


def parse_model_listing(body: Any) -> list[ModelInfo]:
    """Every model in a ``/models`` answer. Empty ``input_modalities``: the server did not say."""
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, list):
        raise ValueError("model listing has no data array")
    found: list[ModelInfo] = []
    for entry in data:
        if not isinstance(entry, dict) or not isinstance(entry.get("id"), str):
            continue
        arch = entry.get("architecture")
        modalities = arch.get("input_modalities") if isinstance(arch, dict) else None
        raw_pricing = entry.get("pricing")
        pricing: dict[str, Any] = raw_pricing if isinstance(raw_pricing, dict) else {}
        name = entry.get("name")
        extra = {"context_length": entry["context_length"]} if "context_length" in entry else {}
        found.append(
            ModelInfo(
                id=entry["id"],
                name=name if isinstance(name, str) and name else entry["id"],
                input_modalities=tuple(str(m) for m in modalities)
                if isinstance(modalities, list)
                else (),
                prompt_price_usd=_price(pricing.get("prompt")),
                completion_price_usd=_price(pricing.get("completion")),
                image_price_usd=_price(pricing.get("image")),
                extra=extra,
            )
        )
    return found
