"""describe(image, options) -> Description: prepare, ask the model, check, re-ask once, repair.

Flow (docs/alt-text-guide.md):

1. The image is prepared in the worker pool (decode, strip metadata, downscale, re-encode).
2. One model call with the rules as the system prompt and the caller's text marked as data.
3. The answer is parsed tolerantly (JSON, JSON in a code fence, or plain text for the first
   language; of an answer cut off at the output limit only the fields that arrived whole), the
   caller's role wins over the model's, and every text is cleaned and checked.
4. If a ``check`` rule still fails — a text in the wrong language among them — the model is
   asked once more with the list of problems and its previous answer (the local provider is
   deterministic, so it is not asked twice).
5. Whatever still fails is repaired deterministically and marked ``needs_review``.
6. A long description that is owed (asked for, or role complex) is never silently null: a page
   gets the text read in it, otherwise a review reason says why there is none.

A caller's decorative image needs no model, only the validation its header allows
(``image.read_header``): ``describe`` answers it at once.

``describe`` is two steps that a caller may also take apart: ``prepare`` (step 1, whose
``sha256`` keys a result cache through :func:`cache_key` before any model runs) and
``describe_prepared`` (steps 2-6).

When no usable text remains for a non-decorative image, ``UpstreamError`` is raised instead of
inventing one (rule 14): the model failed, and failed generations are never charged.
Image bytes and alt texts are never logged; only sizes, counts and rule codes are.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import re
import time
from collections.abc import Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, cast

from alttext.describe import rules
from alttext.describe.errors import UpstreamError
from alttext.describe.image import ImageLimits, PreparedImage, prepare_image, read_header
from alttext.describe.languages import primary_subtag
from alttext.describe.ocr import OcrReader
from alttext.describe.prompt import (
    PROMPT_VERSION,
    RESOLVED_ROLES,
    Prompt,
    build_prompt,
    build_retry_prompt,
    unique_languages,
    wants_long_description,
)
from alttext.describe.providers.base import ModelReply, ModelRequest, Provider
from alttext.describe.rules import Finding, LanguageIdentifier, RuleContext
from alttext.describe.types import (
    DescribeOptions,
    Description,
    ImageInfo,
    ResolvedRole,
    Timing,
    Usage,
)

logger = logging.getLogger(__name__)

TEMPERATURE = 0.2
MAX_TEXT_IN_IMAGE = 4000
MAX_LONG_DESCRIPTION = 20_000
# Review reasons about the long description (the caller asked for one, or fixed role complex).
LONG_FROM_TEXT = (
    "the long description is the text read in the image (the model gave none); check it"
)
NO_LONG_GIVEN = "no long description: the model gave none"
NO_LONG_DECORATIVE = "no long description: the image is marked decorative"
# The model of a caller's decorative image, answered without one.
NO_MODEL = "none"
NO_LONG_CUT_OFF = "no long description: the model's answer was cut off at its output limit"
# Where models put the long description besides the schema's own key.
_LONG_KEYS = ("long_description", "longDescription", "long_desc", "longdesc")


@dataclass(frozen=True)
class Answer:
    """One model reply, parsed. ``texts[lang]`` is None when the model gave none for it."""

    role: ResolvedRole | None
    texts: dict[str, str | None]
    long_description: str | None = None
    text_in_image: str | None = None


@dataclass
class _Assessment:
    role: ResolvedRole
    texts: dict[str, str]
    findings: dict[str, list[Finding]] = field(default_factory=dict)

    def failures(self, lang: str) -> list[Finding]:
        return [f for f in self.findings.get(lang, []) if f.severity == "check"]

    @property
    def failed(self) -> bool:
        return any(self.failures(lang) for lang in self.texts)


_FENCE = re.compile(r"```[A-Za-z]*\s*(.*?)```", re.DOTALL)


def _json_object(content: str) -> dict[str, Any] | None:
    text = content.strip()
    candidates = [m.group(1) for m in _FENCE.finditer(text)] + [text]
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start : end + 1])
    for candidate in candidates:
        try:
            value = json.loads(candidate)
        except ValueError:
            continue
        if isinstance(value, dict):
            return cast(dict[str, Any], value)
    return None


def _optional_text(value: object, limit: int) -> str | None:
    if not isinstance(value, str):
        return None
    value = value.strip()
    return value[:limit] if value and value.lower() not in ("null", "none") else None


def _long_text(value: object, limit: int) -> str | None:
    """A long description as models send it: a string, or lines as a list, or a table as an
    object ("Q1": "$1.2M"); anything else counts as none."""
    if isinstance(value, list):
        value = "\n".join(
            str(item).strip() for item in value if isinstance(item, str | int | float)
        )
    elif isinstance(value, dict):
        value = "\n".join(
            f"{key}: {item}" for key, item in value.items() if isinstance(item, str | int | float)
        )
    return _optional_text(value, limit)


_KEY = re.compile(r'"(role|text_in_image|alt_texts|long_description)"\s*:\s*')


def _salvage(content: str) -> dict[str, Any]:
    """The fields of a JSON answer cut off at the output limit that arrived whole."""
    decoder = json.JSONDecoder()
    found: dict[str, Any] = {}
    for m in _KEY.finditer(content):
        try:
            found[m.group(1)], _ = decoder.raw_decode(content, m.end())
        except ValueError:
            continue
    return found


def _match_languages(raw: object, languages: Sequence[str]) -> dict[str, str | None]:
    texts: dict[str, str | None] = dict.fromkeys(languages)
    if isinstance(raw, str):
        texts[languages[0]] = raw
        return texts
    if not isinstance(raw, dict):
        return texts
    by_key = {str(k).strip().lower(): v for k, v in raw.items()}
    by_primary: dict[str, list[object]] = {}
    for key, value in by_key.items():
        by_primary.setdefault(primary_subtag(key), []).append(value)
    for lang in languages:
        value = by_key.get(lang.lower())
        # "en" answered as "en-US" (or the reverse): accept when it is unambiguous.
        if value is None and len(by_primary.get(primary_subtag(lang), [])) == 1:
            value = by_primary[primary_subtag(lang)][0]
        texts[lang] = value if isinstance(value, str) else None
    return texts


def parse_answer(content: str, languages: Sequence[str], *, truncated: bool = False) -> Answer:
    """Tolerant parse: JSON (also inside ```json fences), else the whole text for the first
    language. Unknown roles are ignored; missing languages stay None (a check failure).

    A ``truncated`` answer (cut off at the output limit) keeps only the fields that arrived
    whole; its text is never taken as alt text."""
    languages = unique_languages(languages)
    data = _json_object(content)
    if data is None and truncated:
        data = _salvage(content)
    if data is None:
        texts: dict[str, str | None] = dict.fromkeys(languages)
        texts[languages[0]] = content
        return Answer(role=None, texts=texts)
    role = data.get("role")
    resolved = cast(ResolvedRole, role.strip().lower()) if isinstance(role, str) else None
    texts = _match_languages(data.get("alt_texts"), languages)
    if texts[languages[0]] is None:
        for key in ("alt_text", "alt", "text"):
            if isinstance(data.get(key), str):
                texts[languages[0]] = data[key]
                break
    return Answer(
        role=resolved if resolved in RESOLVED_ROLES else None,
        texts=texts,
        long_description=_long_text(
            next((data[k] for k in _LONG_KEYS if k in data), None), MAX_LONG_DESCRIPTION
        ),
        text_in_image=_optional_text(data.get("text_in_image"), MAX_TEXT_IN_IMAGE),
    )


def resolve_role(requested: str, answered: ResolvedRole | None) -> ResolvedRole:
    """The caller's role wins; for ``auto`` the model's, and informative when it gave none."""
    if requested != "auto":
        return cast(ResolvedRole, requested)
    return answered or "informative"


@functools.lru_cache(maxsize=256)
def cache_key(image_sha256: str, options: DescribeOptions) -> str:
    """Hash of the prepared image's digest, the options and the prompt version; never the image.

    Memoised (the options are frozen): a request asks for its key three times (the result
    cache, the engine's metadata, the description), and each was a canonical JSON dump."""
    canonical = json.dumps(
        dataclasses.asdict(options), sort_keys=True, separators=(",", ":"), ensure_ascii=False
    )
    return hashlib.sha256(f"{PROMPT_VERSION}\n{image_sha256}\n{canonical}".encode()).hexdigest()


def _sum(values: Sequence[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


def _dedupe(items: Sequence[str]) -> list[str]:
    return list(dict.fromkeys(items))


class Engine:
    """Turns image bytes into checked alt text. One per process; safe for concurrent use.

    The models it uses (``language_identifier``, the optional ``ocr`` cross-check) take about a
    second each to load, so the process builds them once and hands them in."""

    def __init__(
        self,
        provider: Provider,
        *,
        executor: Executor,
        language_identifier: LanguageIdentifier,
        image_limits: ImageLimits = ImageLimits(),
        ocr: OcrReader | None = None,
    ) -> None:
        self.provider = provider
        self.executor = executor
        self.language_identifier = language_identifier
        self.image_limits = image_limits
        self.ocr = ocr

    async def _decorative(self, data: bytes, options: DescribeOptions) -> Description:
        """A caller's decorative image: ``""`` by definition (guide), so no model runs. The
        image is still validated from its header alone (:func:`read_header`), so a bad image
        fails the same way whatever the role; no pixel is decoded."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        info = await loop.run_in_executor(self.executor, read_header, data, self.image_limits)
        return self._decorative_answer(options, info, int((time.perf_counter() - started) * 1000))

    @staticmethod
    def _decorative_answer(
        options: DescribeOptions, info: ImageInfo, prepare_ms: int, *, key: str = ""
    ) -> Description:
        languages = unique_languages(options.languages)
        reasons = [NO_LONG_DECORATIVE] if options.long_description else []
        return Description(
            alt_text="",
            alt_texts=dict.fromkeys(languages, ""),
            decorative=True,
            role="decorative",
            language=languages[0],
            long_description=None,
            text_in_image=None,
            needs_review=bool(reasons),
            review_reasons=reasons,
            model=NO_MODEL,
            image=info,
            usage=Usage(input_tokens=0, output_tokens=0, upstream_cost_usd=0.0),
            timing=Timing(prepare_ms=prepare_ms, upstream_ms=0),
            cache_key=key,
            attempts=0,
        )

    async def prepare(self, data: bytes, options: DescribeOptions) -> PreparedImage:
        """Step one: decode, orient, strip, downscale and re-encode ``data`` in the worker pool.

        The prepared image's ``sha256`` keys the result cache (:func:`cache_key`) before any
        model runs. ``options`` is accepted so callers hand both steps the same arguments; a
        caller's decorative request is not prepared at all: :meth:`describe` answers it from
        the header alone."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self.executor, prepare_image, data, self.image_limits)

    async def describe_prepared(
        self, prepared: PreparedImage, options: DescribeOptions, *, prepare_ms: int = 0
    ) -> Description:
        """Step two: ask the model about an image :meth:`prepare` made, check, re-ask, repair.

        ``prepare_ms`` is reported as the description's preparation time. A decorative role
        needs no model here either: the answer is ``""`` with the prepared image's size."""
        if options.role == "decorative":
            return self._decorative_answer(
                options, _image_info(prepared), prepare_ms, key=cache_key(prepared.sha256, options)
            )
        languages = unique_languages(options.languages)
        run = _Run(self, prepared, options, languages)

        prompt = build_prompt(options, text_heavy=prepared.text_heavy)
        answer = await run.ask(prompt)
        assessment = await run.assess(answer)
        if assessment.failed and getattr(self.provider, "name", "") != "local":
            retry = build_retry_prompt(
                options,
                text_heavy=prepared.text_heavy,
                previous=run.previous_answer(assessment),
                problems=run.problems(assessment),
            )
            second = await run.ask(retry)
            assessment = run.better(assessment, await run.assess(second, fallback=answer))
            answer = Answer(
                role=second.role or answer.role,
                texts=second.texts,
                long_description=second.long_description or answer.long_description,
                text_in_image=second.text_in_image or answer.text_in_image,
            )
        texts, reasons = await run.finish(assessment)
        long_description, why = await run.long_description(answer, assessment.role)
        return run.description(
            answer, assessment.role, texts, _dedupe(reasons + why), prepare_ms, long_description
        )

    async def describe(self, data: bytes, options: DescribeOptions) -> Description:
        """Both steps: :meth:`prepare`, then :meth:`describe_prepared` (a caller's decorative
        image takes the header-only path instead: no pixel is decoded)."""
        if options.role == "decorative":
            return await self._decorative(data, options)
        started = time.perf_counter()
        prepared = await self.prepare(data, options)
        prepare_ms = int((time.perf_counter() - started) * 1000)
        return await self.describe_prepared(prepared, options, prepare_ms=prepare_ms)


def _image_info(prepared: PreparedImage) -> ImageInfo:
    return ImageInfo(
        width=prepared.width,
        height=prepared.height,
        format=prepared.format,
        sent_width=prepared.sent_width,
        sent_height=prepared.sent_height,
    )


class _Run:
    """The state of one describe() call: replies, usage, the OCR text read at most once."""

    def __init__(
        self,
        engine: Engine,
        prepared: PreparedImage,
        options: DescribeOptions,
        languages: tuple[str, ...],
    ) -> None:
        self.engine = engine
        self.prepared = prepared
        self.options = options
        self.languages = languages
        self.replies: list[ModelReply] = []
        self.upstream_ms = 0
        self._ocr_text: str | None = None
        self._ocr_done = False

    async def ask(self, prompt: Prompt) -> Answer:
        request = ModelRequest(
            system=prompt.system,
            user=prompt.user,
            image=self.prepared.data,
            mime=self.prepared.mime,
            options=self.options,
            pixels=self.prepared.pixels,
            json_schema=prompt.json_schema,
            max_tokens=prompt.max_tokens,
            temperature=TEMPERATURE,
            model=self.options.model,
        )
        started = time.perf_counter()
        try:
            reply = await self.engine.provider.complete(request)
        finally:
            self.upstream_ms += int((time.perf_counter() - started) * 1000)
        self.replies.append(reply)
        return parse_answer(reply.content, self.languages, truncated=reply.truncated)

    async def _ocr(self) -> str | None:
        reader = self.engine.ocr
        if reader is None or self._ocr_done:
            return self._ocr_text
        self._ocr_done = True
        loop = asyncio.get_running_loop()
        try:
            lines = await loop.run_in_executor(
                self.engine.executor, reader.read, self.prepared.pixels
            )
        except Exception as exc:  # OCR is a cross-check; its failure must not fail the request.
            logger.warning("ocr cross-check skipped: %s", type(exc).__name__)
            return None
        self._ocr_text = "\n".join(line.text for line in lines)
        return self._ocr_text

    def context(self, role: ResolvedRole, lang: str, ocr_text: str | None) -> RuleContext:
        return RuleContext(
            role=role,
            max_length=self.options.max_length,
            language=lang,
            context=self.options.context,
            keywords=self.options.keywords,
            ocr_text=ocr_text,
        )

    async def assess(self, answer: Answer, fallback: Answer | None = None) -> _Assessment:
        answered = answer.role or (fallback.role if fallback is not None else None)
        role = resolve_role(self.options.role, answered)
        texts = {
            lang: "" if role == "decorative" else rules.clean(answer.texts[lang] or "", role=role)
            for lang in self.languages
        }
        ocr_text = None
        if any(rules.quoted_spans(text) for text in texts.values()):
            ocr_text = await self._ocr()
        # Language identification and fuzzy OCR matching are CPU work: keep them off the loop.
        findings = await asyncio.get_running_loop().run_in_executor(
            self.engine.executor, partial(self._check_all, texts, answer, role, ocr_text)
        )
        return _Assessment(role=role, texts=texts, findings=findings)

    def _check_all(
        self, texts: dict[str, str], answer: Answer, role: ResolvedRole, ocr_text: str | None
    ) -> dict[str, list[Finding]]:
        findings: dict[str, list[Finding]] = {}
        for lang, text in texts.items():
            if answer.texts[lang] is None and role != "decorative":
                findings[lang] = [
                    Finding("missing_language", "check", f"no alt text was given for {lang}")
                ]
            else:
                findings[lang] = rules.check(
                    text, self.context(role, lang, ocr_text), self.engine.language_identifier
                )
        return findings

    def _prefix(self, lang: str) -> str:
        return f"{lang}: " if len(self.languages) > 1 else ""

    def problems(self, assessment: _Assessment) -> list[str]:
        return [
            self._prefix(lang) + finding.message
            for lang in self.languages
            for finding in assessment.failures(lang)
        ]

    def previous_answer(self, assessment: _Assessment) -> dict[str, Any]:
        return {"role": assessment.role, "alt_texts": assessment.texts}

    def better(self, first: _Assessment, second: _Assessment) -> _Assessment:
        """Per language, the answer with fewer failed checks (the newer one on a tie)."""
        if first.role != second.role:
            return second
        for lang in self.languages:
            if len(first.failures(lang)) < len(second.failures(lang)):
                second.texts[lang] = first.texts[lang]
                second.findings[lang] = first.findings[lang]
        return second

    async def finish(self, assessment: _Assessment) -> tuple[dict[str, str], list[str]]:
        """Repair what still fails, collect review reasons, refuse to invent (rule 14)."""
        texts = dict(assessment.texts)
        reasons: list[str] = []
        role = assessment.role
        for lang in self.languages:
            prefix = self._prefix(lang)
            findings = assessment.findings.get(lang, [])
            failures = [f for f in findings if f.severity == "check"]
            if failures:
                repaired = rules.repair(texts[lang], self.context(role, lang, None))
                reasons += [prefix + f.message for f in failures]
                if repaired != texts[lang]:
                    reasons.append(prefix + "the text was repaired automatically; check it")
                texts[lang] = repaired
                findings = await asyncio.get_running_loop().run_in_executor(
                    self.engine.executor,
                    rules.check,
                    repaired,
                    self.context(role, lang, None),
                    self.engine.language_identifier,
                )
            reasons += [prefix + f.message for f in findings if f.severity == "flag"]
            if role != "decorative" and not texts[lang]:
                logger.info("no usable alt text: language=%s codes=%s", lang, _codes(failures))
                raise UpstreamError(
                    "The model returned no usable alt text for this image"
                    + (f" in {lang}." if len(self.languages) > 1 else ".")
                )
        for reply in self.replies:
            reasons += list(reply.review_reasons)
        return texts, _dedupe(reasons)

    async def long_description(
        self, answer: Answer, role: ResolvedRole
    ) -> tuple[str | None, list[str]]:
        """The long description, and why there is none when one is owed (never a silent null).

        Owed when the caller asked or fixed the role as complex; a model's own one for an image
        it classified as complex is kept too. A text-heavy image (a page, a screenshot) whose
        words were read gets them as its long description when the model gave none."""
        owed = wants_long_description(self.options)
        text = answer.long_description
        if not (owed or role == "complex"):
            return None, []
        if text or not owed:
            return text, []
        if role == "decorative":
            return None, ["no long description: the image is decorative"]
        if self.prepared.text_heavy:
            local = getattr(self.engine.provider, "name", "") == "local"
            read = (None if local else await self._ocr()) or answer.text_in_image
            if read and read.strip():
                return read.strip()[:MAX_LONG_DESCRIPTION], [LONG_FROM_TEXT]
        explained = [r.no_long_description for r in self.replies if r.no_long_description]
        said = any(
            "long description" in why.lower() for r in self.replies for why in r.review_reasons
        )
        if explained or said:
            return None, explained[-1:]
        if any(r.truncated for r in self.replies):
            return None, [NO_LONG_CUT_OFF]
        return None, [NO_LONG_GIVEN]

    def description(
        self,
        answer: Answer,
        role: ResolvedRole,
        texts: dict[str, str],
        reasons: list[str],
        prepare_ms: int,
        long_description: str | None,
    ) -> Description:
        prepared = self.prepared
        last = self.replies[-1]
        text_in_image = answer.text_in_image
        if "captcha" in f"{self.options.context or ''} {' '.join(texts.values())}".lower():
            text_in_image = None  # a CAPTCHA is never transcribed, not even here
        extra = {
            key: value
            for key, value in (("provider", last.provider), ("generation_id", last.generation_id))
            if value
        }
        logger.debug(
            "described: sent=%dx%d attempts=%d role=%s review=%d",
            prepared.sent_width,
            prepared.sent_height,
            len(self.replies),
            role,
            len(reasons),
        )
        first = self.languages[0]
        return Description(
            alt_text=texts[first],
            alt_texts=texts,
            decorative=role == "decorative",
            role=role,
            language=first,
            long_description=long_description,
            text_in_image=text_in_image,
            needs_review=bool(reasons),
            review_reasons=reasons,
            model=last.model,
            image=_image_info(prepared),
            usage=Usage(
                input_tokens=_sum([r.input_tokens for r in self.replies]),
                output_tokens=_sum([r.output_tokens for r in self.replies]),
                upstream_cost_usd=(
                    sum(r.cost_usd for r in self.replies if r.cost_usd is not None)
                    if any(r.cost_usd is not None for r in self.replies)
                    else None
                ),
            ),
            timing=Timing(prepare_ms=prepare_ms, upstream_ms=self.upstream_ms),
            cache_key=cache_key(prepared.sha256, self.options),
            attempts=len(self.replies),
            extra=extra,
        )


def _codes(findings: Sequence[Finding]) -> str:
    return ",".join(f.code for f in findings)
