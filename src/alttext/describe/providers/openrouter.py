"""Vision models over OpenAI-compatible chat completions: OpenRouter, or Ollama / vLLM / LM Studio.

One class serves both because the wire format is the same; OpenRouter mode adds the fallback
chain (``models``), the privacy routing (``provider.data_collection: "deny"`` on every call) and
attribution headers. Failures are retried with jittered backoff inside one time budget, and
every way an upstream can fail — including errors hidden inside HTTP 200 — ends in one of the
``Upstream*`` errors with a detail that never carries the image or the key.

With ``breakers`` (``breaker.py``) each model of the chain has a circuit breaker: a model whose
circuit is open is left out of the chain at once, a retry asks the next model instead of the one
that just failed, and when every circuit is open the call fails at once with 503
``upstream_unavailable`` and a ``Retry-After`` of the time until the first probe.
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from alttext.describe.errors import (
    AppError,
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
)
from alttext.describe.providers.base import ModelInfo, ModelReply, ModelRequest, UpstreamObserver
from alttext.describe.providers.breaker import ChainWalk, CircuitBreakers
from alttext.describe.providers.chat_wire import (
    AttemptFailed,
    WireOptions,
    encode_body,
    parse_completion,
    parse_model_listing,
    parse_retry_after,
    scrub,
    status_failure,
)

logger = logging.getLogger(__name__)

# A cut-off answer gets one more try with this much more room, never beyond the ceiling.
_CUT_OFF_GROWTH = 2
_MAX_TOKENS_CEILING = 2000
# When an exhausted 503 named no Retry-After, tell our caller to come back after this long.
_DEFAULT_RETRY_AFTER_S = 10.0
# A retry is only worth its wait if at least this long (or the whole per-attempt timeout, if
# shorter) is left for the call after it; otherwise the caller gets the failure it already has
# rather than a timeout of an attempt that never had a chance.
_MIN_ATTEMPT_S = 0.5

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class ChatConfig:
    """How to reach one OpenAI-compatible server. ``models`` is the fallback chain, best first."""

    base_url: str
    api_key: str | None = field(default=None, repr=False)
    models: tuple[str, ...] = ()
    openrouter: bool = True
    zero_data_retention: bool = False
    app_url: str = "https://alttext.dev"
    app_title: str = "AltText API"
    timeout_s: float = 30.0  # one HTTP attempt
    total_budget_s: float = 60.0  # all attempts and waits of one complete() call
    max_retries: int = 3
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    retry_after_cap_s: float = 20.0  # a longer Retry-After is not waited out: we give up early
    models_cache_s: float = 600.0


class ChatCompletionsProvider:
    """The ``Provider`` for OpenRouter (``config.openrouter``) or any OpenAI-compatible server.

    The aiohttp session belongs to the app (one per process, ``runtime.provider_client``);
    pass ``client=None`` to let the provider open one on its first call, which ``aclose``
    then closes. ``sleep``, ``clock`` and ``jitter`` are
    injectable so tests can watch the backoff without waiting for it. ``on_upstream`` is told
    of every HTTP call to the server (retries included): model, outcome and seconds.
    ``breakers`` (optional) holds a circuit per model; without it every attempt asks the whole
    chain.
    """

    def __init__(
        self,
        config: ChatConfig,
        client: aiohttp.ClientSession | None = None,
        *,
        sleep: Sleep = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        on_upstream: UpstreamObserver | None = None,
        breakers: CircuitBreakers | None = None,
    ) -> None:
        self._config = config
        self.breakers = breakers
        self._owns_client = client is None
        self._client = client
        self._sleep = sleep
        self._clock = clock
        self._jitter = jitter
        self._on_upstream = on_upstream
        self.name = "openrouter" if config.openrouter else "openai"
        self._label = "OpenRouter" if config.openrouter else "The OpenAI-compatible server"
        self._base = config.base_url.rstrip("/")
        # Model keys (a model id or a whole chain) known to refuse response_format.
        self._no_format: set[str] = set()
        self._models_cache: tuple[float, list[ModelInfo]] | None = None

    # -- Provider protocol -------------------------------------------------------------------

    async def complete(self, request: ModelRequest) -> ModelReply:
        config = self._config
        chain = (request.model,) if request.model else config.models
        if not chain:
            raise UpstreamError(f"No model is configured for {self._label}")
        # OpenRouter walks a chain itself; other servers (and a chosen model) get one model.
        one_model = request.model is not None or not config.openrouter
        walk = ChainWalk(chain, self.breakers, limit=1 if one_model else None)
        format_dropped = False
        max_tokens = request.max_tokens
        widened = False
        deadline = self._clock() + config.total_budget_s
        attempt = 0
        last: AttemptFailed | None = None
        while True:
            attempt += 1
            remaining = deadline - self._clock()
            admission = walk.next()
            if admission is None:
                raise self._circuits_open(walk, last)
            key = ",".join(admission.models)
            with_format = request.json_schema is not None and not format_dropped
            with_format = with_format and key not in self._no_format
            options = WireOptions(
                self._model_fields(request.model, admission.models),
                self._provider_prefs(),
                with_format,
                max_tokens,
            )
            try:
                reply = await self._attempt(request, options, min(config.timeout_s, remaining))
            except AttemptFailed as failure:
                last = failure
                walk.failed(admission, health=_health_failure(failure))
                if failure.format_rejected and with_format:
                    # Structured output is a nicety: the engine parses JSON from plain text too.
                    logger.info("response_format unsupported for %s; retrying without it", key)
                    self._no_format.add(key)
                    format_dropped = True
                    attempt -= 1
                    continue
                if failure.cut_off and not widened:
                    widened = True
                    max_tokens = min(max_tokens * _CUT_OFF_GROWTH, _MAX_TOKENS_CEILING)
                    delay = 0.0
                elif failure.cut_off and failure.partial is not None:
                    # Cut off again with more room: what arrived usually holds the alt texts
                    # whole (the long description comes last); the engine salvages them.
                    logger.info("%s answer cut off twice; returning what arrived", self.name)
                    return failure.partial
                elif failure.cut_off or not failure.retryable:
                    raise self._public(failure) from None
                elif walk.blocked():
                    raise self._circuits_open(walk, failure) from None
                elif walk.moves_on():
                    delay = 0.0  # the next model need not wait for the one that failed
                else:
                    delay = self._delay(attempt, failure.retry_after)
                remaining = deadline - self._clock()
                too_long = (
                    failure.retry_after is not None
                    and failure.retry_after > config.retry_after_cap_s
                )
                no_time = delay + min(config.timeout_s, _MIN_ATTEMPT_S) > remaining
                if attempt > config.max_retries or no_time or too_long:
                    raise self._exhausted(failure, attempt) from None
                logger.warning(
                    "%s attempt %d failed (%s); retrying in %.2fs",
                    self.name,
                    attempt,
                    failure.detail,
                    delay,
                )
                if delay > 0:
                    await self._sleep(delay)
            except BaseException:
                walk.abandon(admission)
                raise
            else:
                walk.answered(admission, reply.model)
                return reply

    async def models(self) -> list[ModelInfo]:
        now = self._clock()
        if self._models_cache and now - self._models_cache[0] < self._config.models_cache_s:
            return list(self._models_cache[1])
        try:
            async with asyncio.timeout(self._config.timeout_s):
                async with self._session().get(
                    f"{self._base}/models", headers=self._headers()
                ) as response:
                    response.raise_for_status()
                    listing = parse_model_listing(json.loads(await response.read()))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            # Not cached: the next call tries again. Configured ids are still the truth.
            logger.warning("model listing failed: %s", scrub(str(exc), self._secrets()))
            return [ModelInfo(id=m, name=m) for m in self._config.models]
        chosen = self._select(listing)
        self._models_cache = (now, chosen)
        return list(chosen)

    def routing_policy(self) -> dict[str, Any]:
        if self._config.openrouter:
            return {
                "provider": "openrouter",
                "data_collection": "deny",
                "zdr": self._config.zero_data_retention,
                "models": list(self._config.models),
            }
        # A self-hosted server: its operator, not a router, decides what is retained.
        return {
            "provider": "openai",
            "data_collection": "server operator",
            "zdr": False,
            "models": list(self._config.models),
        }

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.close()

    def _session(self) -> aiohttp.ClientSession:
        if self._client is None:  # opened here, in the running loop, as aiohttp requires
            self._client = aiohttp.ClientSession(
                cookie_jar=aiohttp.DummyCookieJar(), trust_env=False
            )
        return self._client

    # -- one attempt -------------------------------------------------------------------------

    async def _attempt(
        self, request: ModelRequest, options: WireOptions, timeout_s: float
    ) -> ModelReply:
        """One HTTP call, reported to ``on_upstream`` however it ends (a cancelled call is
        not: the caller left, the server did nothing wrong)."""
        observer = self._on_upstream
        if observer is None:
            return await self._call(request, options, timeout_s)
        # A failed call names the model asked for (the chain's first); a success names the
        # one that answered, so fallbacks along the chain show.
        asked = str(options.model_fields.get("model") or options.model_fields["models"][0])
        started = time.perf_counter()
        try:
            reply = await self._call(request, options, timeout_s)
        except AttemptFailed as failure:
            _notify(observer, asked, _outcome(failure), started)
            raise
        except Exception:
            _notify(observer, asked, "error", started)
            raise
        _notify(observer, reply.model, "ok", started)
        return reply

    async def _call(
        self, request: ModelRequest, options: WireOptions, timeout_s: float
    ) -> ModelReply:
        content, body = encode_body(request, options)
        requested = options.model_fields.get("model") or options.model_fields["models"][0]
        timeout_s = max(timeout_s, 0.001)
        try:
            async with asyncio.timeout(timeout_s):
                async with self._session().post(
                    f"{self._base}/chat/completions",
                    data=content,
                    headers={**self._headers(), "Content-Type": "application/json"},
                ) as response:
                    raw = await response.read()
        except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
            raise AttemptFailed(
                f"{self._label} did not answer within {timeout_s:.1f}s",
                retryable=True,
                final=UpstreamTimeout,
            ) from None
        except aiohttp.ClientConnectorError:  # refused, unresolvable, TLS not verified
            raise AttemptFailed(
                f"{self._label} could not be reached", retryable=True, final=UpstreamUnavailable
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            raise AttemptFailed(
                f"{self._label} connection failed ({type(exc).__name__})", retryable=True
            ) from None
        try:
            payload: Any = json.loads(raw)
        except ValueError:
            payload = None
        if response.status != 200:
            raise status_failure(
                response.status,
                payload,
                label=self._label,
                retry_after=parse_retry_after(response.headers.get("retry-after")),
                format_sent="response_format" in body,
                routing=self._routing_text(),
            )
        if payload is None:
            raise AttemptFailed(f"{self._label} returned a body that is not JSON", retryable=True)
        return parse_completion(
            payload,
            label=self._label,
            requested_model=str(requested),
            generation_header=response.headers.get("x-generation-id"),
        )

    # -- helpers -----------------------------------------------------------------------------

    def _headers(self) -> dict[str, str]:
        headers: dict[str, str] = {}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        if self._config.openrouter:
            headers["HTTP-Referer"] = self._config.app_url
            headers["X-Title"] = self._config.app_title
        return headers

    def _model_fields(self, chosen: str | None, chain: tuple[str, ...]) -> dict[str, Any]:
        # OpenRouter walks the chain itself; other servers know only one model per call.
        if self._config.openrouter and chosen is None:
            return {"models": list(chain)}
        return {"model": chain[0]}

    def _provider_prefs(self) -> dict[str, Any] | None:
        if not self._config.openrouter:
            return None
        prefs: dict[str, Any] = {"data_collection": "deny"}
        if self._config.zero_data_retention:
            prefs["zdr"] = True
        return prefs

    def _routing_text(self) -> str:
        if not self._config.openrouter:
            return "the server's configured models"
        zdr = ", zdr=true" if self._config.zero_data_retention else ""
        return f"data_collection=deny{zdr}"

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        config = self._config
        backoff = min(config.backoff_max_s, config.backoff_base_s * 2 ** (attempt - 1))
        # Half fixed, half random: spreads retries of many callers without ever being ~0.
        delay = float(backoff * (0.5 + 0.5 * self._jitter()))
        if retry_after is not None:
            delay = max(delay, min(retry_after, config.retry_after_cap_s))
        return delay

    def _secrets(self) -> tuple[str, ...]:
        return (self._config.api_key,) if self._config.api_key else ()

    def _public(
        self, failure: AttemptFailed, final: type[AppError] | None = None, detail: str | None = None
    ) -> AppError:
        cls = final or failure.final
        text = scrub(detail or failure.detail, self._secrets())
        retry_after = failure.retry_after
        if cls is UpstreamUnavailable and retry_after is None:
            retry_after = _DEFAULT_RETRY_AFTER_S
        return cls(text, retry_after=retry_after)

    def _circuits_open(self, walk: ChainWalk, last: AttemptFailed | None) -> AppError:
        """Every model of the chain is paused by its circuit breaker: 503 at once, with the
        time until the first probe as Retry-After."""
        models = ", ".join(walk.chain)
        since = f" (last failure: {scrub(last.detail, self._secrets())})" if last else ""
        return UpstreamUnavailable(
            f"Every model of the chain ({models}) failed repeatedly and is paused until its "
            f"circuit breaker lets a probe through{since}",
            retry_after=walk.retry_after(),
        )

    def _exhausted(self, failure: AttemptFailed, attempts: int) -> AppError:
        tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
        return self._public(failure, detail=f"{failure.detail} (gave up after {tries})")

    def _select(self, listing: list[ModelInfo]) -> list[ModelInfo]:
        """Image-capable models; with a configured chain, the chain's models in chain order."""

        def usable(info: ModelInfo) -> bool:
            # OpenAI-compatible servers rarely describe modalities; trust the operator then.
            return "image" in info.input_modalities or (
                not self._config.openrouter and not info.input_modalities
            )

        if not self._config.models:
            return [info for info in listing if usable(info)]
        by_id = {info.id: info for info in listing}
        return [by_id[m] for m in self._config.models if m in by_id and usable(by_id[m])]


def _notify(observer: UpstreamObserver, model: str, outcome: str, started: float) -> None:
    try:
        observer(model, outcome, time.perf_counter() - started)
    except Exception:  # an observer's failure must never fail a generation
        logger.exception("upstream observer failed")


def _health_failure(failure: AttemptFailed) -> bool:
    """Whether a failed call puts the model's health in doubt (counts against its circuit):
    5xx, 429, timeouts, unreachable, errors inside HTTP 200, broken or empty answers. A bad
    request, a refused key, moderation, a refused response_format or a cut-off answer do not."""
    return failure.retryable and not failure.cut_off and not failure.format_rejected


def _outcome(failure: AttemptFailed) -> str:
    """How one failed call is counted in ``alttext_upstream_calls_total``."""
    if failure.cut_off:
        return "truncated"
    if failure.refused:
        return "refused"
    if failure.final is UpstreamTimeout:
        return "timeout"
    if failure.final is UpstreamUnavailable:
        return "unavailable"
    return "error"
