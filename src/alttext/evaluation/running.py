"""Run an evaluation set through the engine, one model at a time.

The cases go through the process's own :class:`~alttext.describe.engine.Engine` parts (image
preparation, prompt, checks, re-ask, repair: what the API does), with ``DescribeOptions.model``
naming the model. The only addition is an observer on the provider that keeps each call's
request and reply for the case being run, so the model's first answer can be checked before
the engine cleans or repairs it. Nothing is written anywhere and no credits are involved.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from alttext.describe import rules
from alttext.describe.engine import Engine, parse_answer, resolve_role
from alttext.describe.errors import AppError
from alttext.describe.providers.base import ModelInfo, ModelReply, ModelRequest, Provider
from alttext.describe.rules import Finding, RuleContext
from alttext.evaluation.cases import EvalCase, EvalSet
from alttext.evaluation.metrics import ModelSummary, summarise
from alttext.evaluation.results import CaseResult

DEFAULT_CONCURRENCY = 4
_calls: contextvars.ContextVar[list[tuple[ModelRequest, ModelReply]] | None] = (
    contextvars.ContextVar("alttext_evaluation_calls", default=None)
)


class _Observed:
    """The process's provider, with each call of the current case recorded (a context var:
    every case runs in its own task)."""

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        # The engine re-asks every provider but the deterministic local one; keep its name.
        self.name = inner.name

    async def complete(self, request: ModelRequest) -> ModelReply:
        reply = await self.inner.complete(request)
        calls = _calls.get()
        if calls is not None:
            calls.append((request, reply))
        return reply

    async def models(self) -> list[ModelInfo]:
        return await self.inner.models()

    def routing_policy(self) -> dict[str, Any]:
        return self.inner.routing_policy()

    async def aclose(self) -> None:
        return None  # the process owns the real provider and closes it


@dataclass(frozen=True)
class Pricing:
    """USD per token (and per image) of one model, from the provider's model listing."""

    prompt: float
    completion: float
    image: float = 0.0

    def cost(
        self, input_tokens: int | None, output_tokens: int | None, *, images: int
    ) -> float | None:
        if input_tokens is None or output_tokens is None:
            return None
        return input_tokens * self.prompt + output_tokens * self.completion + images * self.image


def pricing_of(info: ModelInfo) -> Pricing | None:
    if info.prompt_price_usd is None or info.completion_price_usd is None:
        return None
    return Pricing(info.prompt_price_usd, info.completion_price_usd, info.image_price_usd or 0.0)


ResultCallback = Callable[[str | None, CaseResult], None]


class Evaluator:
    """Runs cases through an engine built from ``engine``'s parts, observing its provider."""

    def __init__(self, engine: Engine, *, concurrency: int = DEFAULT_CONCURRENCY) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.base = engine
        self.engine = Engine(
            _Observed(engine.provider),
            executor=engine.executor,
            language_identifier=engine.language_identifier,
            image_limits=engine.image_limits,
            ocr=engine.ocr,
        )
        self.concurrency = concurrency
        self._prices: dict[str, Pricing] | None = None
        self._images: dict[str, bytes] = {}

    async def run(
        self,
        evalset: EvalSet,
        models: Sequence[str | None],
        on_result: ResultCallback | None = None,
    ) -> list[ModelSummary]:
        """One summary per model, in the order given (``None``: the configured chain)."""
        summaries = []
        for model in models:
            results = await self.run_model(evalset, model, on_result)
            summaries.append(summarise(model, evalset.cases, results))
        return summaries

    async def run_model(
        self,
        evalset: EvalSet,
        model: str | None,
        on_result: ResultCallback | None = None,
    ) -> list[CaseResult]:
        gate = asyncio.Semaphore(self.concurrency)

        async def one(case: EvalCase) -> CaseResult:
            async with gate:
                result = await self.run_case(evalset, case, model)
            if on_result is not None:
                on_result(model, result)
            return result

        results = await asyncio.gather(*(one(c) for c in evalset.cases))
        return await self._priced(list(results))

    async def _image(self, evalset: EvalSet, case: EvalCase) -> bytes:
        path = evalset.path_of(case)
        key = str(path)
        if key not in self._images:
            self._images[key] = await asyncio.to_thread(path.read_bytes)
        return self._images[key]

    async def run_case(self, evalset: EvalSet, case: EvalCase, model: str | None) -> CaseResult:
        calls: list[tuple[ModelRequest, ModelReply]] = []
        _calls.set(calls)  # this task's own context: the case's calls only
        started = time.perf_counter()
        try:
            data = await self._image(evalset, case)
            description = await self.engine.describe(data, case.options(model))
        except (AppError, OSError) as exc:
            return CaseResult(
                case_id=case.id,
                model=model,
                latency_ms=(time.perf_counter() - started) * 1000,
                error=exc.code if isinstance(exc, AppError) else "io_error",
                error_detail=exc.detail if isinstance(exc, AppError) else str(exc.strerror),
                attempts=len(calls),
            )
        latency_ms = (time.perf_counter() - started) * 1000
        first_text, first_role, findings = await self._first_answer(case, model, calls)
        loop = asyncio.get_running_loop()
        detected = await loop.run_in_executor(
            self.engine.executor, self._detect, description.alt_text
        )
        usage = description.usage
        return CaseResult(
            case_id=case.id,
            model=model,
            latency_ms=latency_ms,
            # A caller-decorative case is answered without a model (attempts == 0).
            answered_by=description.model if description.attempts else None,
            alt_text=description.alt_text,
            role=description.role,
            needs_review=description.needs_review,
            attempts=description.attempts,
            first_text=first_text,
            first_role=first_role,
            findings=findings,
            language_expected=self.engine.language_identifier.label(case.language),
            language_detected=detected,
            input_tokens=usage.input_tokens,
            output_tokens=usage.output_tokens,
            cost_usd=usage.upstream_cost_usd,
            cost_source="reported" if usage.upstream_cost_usd is not None else None,
        )

    def _detect(self, text: str) -> str | None:
        found = rules.detect_language(text, self.engine.language_identifier)
        return found[0] if found is not None else None

    async def _first_answer(
        self,
        case: EvalCase,
        model: str | None,
        calls: Sequence[tuple[ModelRequest, ModelReply]],
    ) -> tuple[str | None, str | None, tuple[str, ...]]:
        """The first reply as the engine parses it, checked by the engine's rules as written
        (not yet cleaned): the codes it raises."""
        if not calls:
            return None, None, ()
        request, reply = calls[0]
        options = case.options(model)
        answer = parse_answer(reply.content, options.languages)
        role = resolve_role(options.role, answer.role)
        raw = answer.texts.get(case.language)
        if raw is None and role != "decorative":
            return None, role, ("missing_language",)
        text = (raw or "").strip()
        ocr_text = None
        if rules.quoted_spans(text) and self.engine.ocr is not None and request.pixels is not None:
            ocr, pixels = self.engine.ocr, request.pixels
            loop = asyncio.get_running_loop()
            lines = await loop.run_in_executor(self.engine.executor, ocr.read, pixels)
            ocr_text = "\n".join(line.text for line in lines)
        context = RuleContext(
            role=role,
            max_length=options.max_length,
            language=case.language,
            context=options.context,
            keywords=options.keywords,
            ocr_text=ocr_text,
        )
        findings: list[Finding] = await asyncio.get_running_loop().run_in_executor(
            self.engine.executor, rules.check, text, context, self.engine.language_identifier
        )
        return text, role, tuple(dict.fromkeys(f.code for f in findings))

    async def _priced(self, results: list[CaseResult]) -> list[CaseResult]:
        """Fill in the cost from the model's prices where the upstream reported none."""
        if all(r.cost_usd is not None for r in results if r.answered):
            return results
        prices = await self._price_list()
        out = []
        for r in results:
            pricing = prices.get(r.answered_by or "")
            if r.answered and r.cost_usd is None and pricing is not None:
                cost = pricing.cost(r.input_tokens, r.output_tokens, images=r.attempts)
                if cost is not None:
                    r = replace(r, cost_usd=cost, cost_source="pricing")
            out.append(r)
        return out

    async def _price_list(self) -> dict[str, Pricing]:
        if self._prices is None:
            try:
                listing = await self.base.provider.models()
            except AppError:
                listing = []
            self._prices = {m.id: p for m in listing if (p := pricing_of(m)) is not None}
        return self._prices
