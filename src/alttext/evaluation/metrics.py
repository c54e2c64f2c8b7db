"""Per-model numbers from case results: pure functions, no engine, no I/O.

The measures, and why:

* **Checks** run on the model's *first* answer, before the engine cleans, re-asks or repairs
  it: every rule code the engine's checks produce (docs/alt-text-guide.md rules 1-14). The engine
  hides many slips from callers, but each slip costs a re-ask or a repair, so this is where
  models differ. A case passes a code when its first answer did not raise it.
* **Role accuracy**: the delivered role against the case's expected role, for cases that ask
  for ``auto``; **decorative accuracy**: decorative or not, for every case (the guide's
  "role accuracy (decorative vs not)").
* **Language accuracy**: the language identifier's top guess for the delivered text against
  the requested language, for texts long enough to judge (quoted image text ignored).
* **Length**: characters of the delivered non-empty texts, nearest-rank percentiles.
* **OCR agreement**: for cases with text in the image (the case's ``text``, else the quoted
  text of its reference), the character similarity (difflib ratio on case-folded, NFKC text)
  between that text and the best-matching span of the alt text; 1.0 is a perfect transcription.
* **Latency** is wall-clock per image through the engine (prepare, model calls, checks).
* **Cost per 1,000 images**: the mean cost of a described image times 1,000, from the
  upstream's reported cost, else from the model's per-token prices.
* **chrF** (character n-gram F-score, β = 2) against the human reference: *regression-only*.
  One reference is one of many good answers, so it says whether a change moved the output,
  not whether the output is good.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from difflib import SequenceMatcher
from typing import Any

from alttext.describe.rules import Severity, quoted_spans
from alttext.evaluation.cases import EvalCase
from alttext.evaluation.results import CaseResult

# Every code the engine's checks produce (the rules' catalogue and the engine's own
# ``missing_language``), with its rule in docs/alt-text-guide.md and its severity.
CHECKS: tuple[tuple[str, str, Severity], ...] = (
    ("decorative_not_empty", "1", "check"),
    ("redundant_opening", "2", "check"),
    ("wrapper", "3", "check"),
    ("markdown", "3", "check"),
    ("html", "3", "check"),
    ("line_break", "3", "check"),
    ("emoji", "3", "check"),
    ("url", "4", "check"),
    ("file_name", "4", "check"),
    ("camera_details", "4", "check"),
    ("camera_name", "4", "flag"),
    ("placeholder", "4", "check"),
    ("functional_describes_icon", "role", "check"),
    ("too_long", "5", "check"),
    ("no_end_punctuation", "6", "check"),
    ("copies_context", "7", "check"),
    ("quote_not_in_image", "8", "check"),
    ("quote_unverified", "8", "flag"),
    ("captcha_transcribed", "8", "check"),
    ("person_attributes", "9", "flag"),
    ("person_name", "9", "flag"),
    ("wrong_language", "10", "check"),
    ("repeated_word", "11", "flag"),
    ("keyword_stuffing", "11", "flag"),
    ("hedge", "12", "flag"),
    ("empty", "14", "check"),
    ("missing_language", "14", "check"),
)
SEVERITY: dict[str, Severity] = {code: severity for code, _, severity in CHECKS}
GUIDE_RULE: dict[str, str] = {code: rule for code, rule, _ in CHECKS}
REGRESSION_ONLY = "regression-only: one reference is one good answer among many"


@dataclass(frozen=True)
class Rate:
    """``count`` of ``total`` cases meet the measure (pass the check, have the right role…)."""

    count: int
    total: int

    @property
    def rate(self) -> float | None:
        return self.count / self.total if self.total else None

    def as_dict(self) -> dict[str, Any]:
        return {"count": self.count, "total": self.total, "rate": self.rate}


@dataclass(frozen=True)
class Distribution:
    count: int
    min: float | None = None
    p50: float | None = None
    p95: float | None = None
    max: float | None = None


@dataclass(frozen=True)
class Cost:
    per_1000_usd: float | None
    total_usd: float
    priced_cases: int
    source: str  # reported, pricing, mixed or unknown


@dataclass(frozen=True)
class MeanScore:
    cases: int
    mean: float | None
    min: float | None


@dataclass
class ModelSummary:
    model: str  # a label: the requested model, else who answered
    requested: str | None
    answered_by: list[str]
    cases: int
    answered: int
    errors: dict[str, int]
    first_answer_passes: Rate  # no check-severity code on the first answer
    checks: dict[str, Rate]
    reasked: Rate
    needs_review: Rate
    role_accuracy: Rate
    decorative_accuracy: Rate
    language_accuracy: Rate
    length: Distribution
    ocr_agreement: MeanScore
    latency_ms: Distribution
    cost: Cost
    reference_chrf: MeanScore
    results: list[CaseResult] = field(default_factory=list)

    def as_dict(self, *, results: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "model": self.model,
            "requested": self.requested,
            "answered_by": self.answered_by,
            "cases": self.cases,
            "answered": self.answered,
            "errors": self.errors,
            "first_answer_passes": self.first_answer_passes.as_dict(),
            "checks": {
                code: {**rate.as_dict(), "severity": SEVERITY[code], "rule": GUIDE_RULE[code]}
                for code, rate in self.checks.items()
            },
            "reasked": self.reasked.as_dict(),
            "needs_review": self.needs_review.as_dict(),
            "role_accuracy": self.role_accuracy.as_dict(),
            "decorative_accuracy": self.decorative_accuracy.as_dict(),
            "language_accuracy": self.language_accuracy.as_dict(),
            "length": asdict(self.length),
            "ocr_agreement": asdict(self.ocr_agreement),
            "latency_ms": asdict(self.latency_ms),
            "cost": asdict(self.cost),
            "reference_chrf": {**asdict(self.reference_chrf), "note": REGRESSION_ONLY},
        }
        if results:
            out["results"] = [r.as_dict() for r in self.results]
        return out


# --- the measures ---------------------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (the smallest value with at least p% of values at or below)."""
    if not values:
        raise ValueError("no values")
    ordered = sorted(values)
    rank = max(1, math.ceil(p / 100 * len(ordered)))
    return ordered[rank - 1]


def distribution(values: Sequence[float]) -> Distribution:
    if not values:
        return Distribution(count=0)
    return Distribution(
        count=len(values),
        min=min(values),
        p50=percentile(values, 50),
        p95=percentile(values, 95),
        max=max(values),
    )


_DASHES = re.compile(r"[\u2010-\u2015\u2212]")
_QUOTES = str.maketrans({"“": '"', "”": '"', "„": '"', "«": '"', "»": '"', "’": "'", "‘": "'"})


def normalise_text(text: str) -> str:
    """NFKC, case-folded, one kind of dash and quote, single spaces."""
    text = unicodedata.normalize("NFKC", text).casefold().translate(_QUOTES)
    return " ".join(_DASHES.sub("-", text).split())


def text_similarity(truth: str, alt: str) -> float:
    """How well ``alt`` reproduces ``truth``: the difflib ratio between the truth and the
    best-matching span of the alt text of the truth's length (1.0: found verbatim)."""
    t, a = normalise_text(truth), normalise_text(alt)
    if not t:
        return 1.0
    if not a:
        return 0.0
    if len(a) <= len(t):
        return SequenceMatcher(None, t, a, autojunk=False).ratio()
    blocks = SequenceMatcher(None, t, a, autojunk=False).get_matching_blocks()
    starts = {min(max(0, b - i), len(a) - len(t)) for i, b, size in blocks if size}
    best = 0.0
    for start in sorted(starts or {0}):
        window = a[start : start + len(t)]
        best = max(best, SequenceMatcher(None, t, window, autojunk=False).ratio())
        if best == 1.0:
            break
    return best


def truth_texts(case: EvalCase) -> list[str]:
    """The image text an alt text should reproduce: ``text``, else the reference's quotes."""
    if case.text:
        return [case.text]
    return [q for q in quoted_spans(case.reference) if q.strip()]


def ocr_agreement(case: EvalCase, alt: str) -> float | None:
    truths = truth_texts(case)
    if not truths:
        return None
    return sum(text_similarity(t, alt) for t in truths) / len(truths)


def _char_ngrams(text: str, n: int) -> Counter[str]:
    return Counter(text[i : i + n] for i in range(len(text) - n + 1))


def chrf(hypothesis: str, reference: str, *, max_n: int = 6, beta: float = 2.0) -> float:
    """chrF (Popović 2015): character n-gram F-score, n = 1..6, spaces ignored; 0..1."""
    hyp = "".join(normalise_text(hypothesis).split())
    ref = "".join(normalise_text(reference).split())
    if not hyp or not ref:
        return 1.0 if hyp == ref else 0.0
    precisions: list[float] = []
    recalls: list[float] = []
    for n in range(1, max_n + 1):
        h, r = _char_ngrams(hyp, n), _char_ngrams(ref, n)
        if not h or not r:
            break
        overlap = sum((h & r).values())
        precisions.append(overlap / sum(h.values()))
        recalls.append(overlap / sum(r.values()))
    p, r_ = sum(precisions) / len(precisions), sum(recalls) / len(recalls)
    if p == 0 and r_ == 0:
        return 0.0
    b2 = beta * beta
    return (1 + b2) * p * r_ / (b2 * p + r_)


def _mean_score(values: Sequence[float]) -> MeanScore:
    if not values:
        return MeanScore(cases=0, mean=None, min=None)
    return MeanScore(cases=len(values), mean=sum(values) / len(values), min=min(values))


def _cost(results: Sequence[CaseResult]) -> Cost:
    priced = [r for r in results if r.cost_usd is not None]
    total = sum(r.cost_usd or 0.0 for r in priced)
    sources = {r.cost_source for r in priced}
    if not priced:
        source = "unknown"
    elif len(sources) == 1:
        source = str(sources.pop())
    else:
        source = "mixed"
    per_1000 = total / len(priced) * 1000 if priced else None
    return Cost(per_1000_usd=per_1000, total_usd=total, priced_cases=len(priced), source=source)


def label_for(model: str | None, results: Sequence[CaseResult]) -> str:
    if model:
        return model
    answered = sorted({r.answered_by for r in results if r.answered_by})
    return ", ".join(answered) if answered else "default"


def summarise(
    model: str | None, cases: Sequence[EvalCase], results: Sequence[CaseResult]
) -> ModelSummary:
    """Every number of one model on one set (``results`` in any order, one per case)."""
    by_id = {c.id: c for c in cases}
    answered = [r for r in results if r.answered]
    errors = Counter(r.error for r in results if r.error is not None)

    checks: dict[str, Rate] = {}
    for code, _, _ in CHECKS:
        failed = sum(1 for r in answered if code in r.findings)
        checks[code] = Rate(count=len(answered) - failed, total=len(answered))
    clean_first = sum(
        1 for r in answered if not any(SEVERITY.get(c) == "check" for c in r.findings)
    )

    auto = [r for r in answered if by_id[r.case_id].role == "auto"]
    role_ok = sum(1 for r in auto if r.role == by_id[r.case_id].expected_role)
    decorative_ok = sum(
        1
        for r in answered
        if (r.role == "decorative") == (by_id[r.case_id].expected_role == "decorative")
    )
    judged = [
        r for r in answered if r.language_expected is not None and r.language_detected is not None
    ]
    language_ok = sum(1 for r in judged if r.language_detected == r.language_expected)

    texts = [r for r in answered if r.alt_text]
    ocr = [
        score
        for r in texts
        if (score := ocr_agreement(by_id[r.case_id], r.alt_text or "")) is not None
    ]
    reference_scores = [
        chrf(r.alt_text or "", by_id[r.case_id].reference)
        for r in texts
        if by_id[r.case_id].reference
    ]
    return ModelSummary(
        model=label_for(model, results),
        requested=model,
        answered_by=sorted({r.answered_by for r in answered if r.answered_by}),
        cases=len(results),
        answered=len(answered),
        errors=dict(sorted(errors.items())),
        first_answer_passes=Rate(clean_first, len(answered)),
        checks=checks,
        reasked=Rate(sum(1 for r in answered if r.attempts > 1), len(answered)),
        needs_review=Rate(sum(1 for r in answered if r.needs_review), len(answered)),
        role_accuracy=Rate(role_ok, len(auto)),
        decorative_accuracy=Rate(decorative_ok, len(answered)),
        language_accuracy=Rate(language_ok, len(judged)),
        length=distribution([float(len(r.alt_text or "")) for r in texts]),
        ocr_agreement=_mean_score(ocr),
        latency_ms=distribution([r.latency_ms for r in answered]),
        cost=_cost(answered),
        reference_chrf=_mean_score(reference_scores),
        results=list(results),
    )
