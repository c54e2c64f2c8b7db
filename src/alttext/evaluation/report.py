"""The comparison as a table (one column per model) or as JSON."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from rich.table import Table

from alttext.describe.prompt import PROMPT_VERSION
from alttext.evaluation.cases import EvalSet
from alttext.evaluation.metrics import (
    CHECKS,
    REGRESSION_ONLY,
    Distribution,
    MeanScore,
    ModelSummary,
    Rate,
)

SCHEMA_VERSION = 1


def report_dict(
    evalset: EvalSet,
    summaries: Sequence[ModelSummary],
    *,
    provider: str,
    results: bool = True,
) -> dict[str, Any]:
    """The JSON report: the set, the provider, and every model's numbers (and cases)."""
    return {
        "schema_version": SCHEMA_VERSION,
        "set": {
            "name": evalset.name,
            "path": str(evalset.root),
            "cases": len(evalset.cases),
            "languages": evalset.languages,
            "roles": evalset.roles,
            "tags": evalset.tags,
        },
        "provider": provider,
        "prompt_version": PROMPT_VERSION,
        "models": [s.as_dict(results=results) for s in summaries],
    }


def _pct(rate: Rate, *, counts: bool = False) -> str:
    if rate.rate is None:
        return "–"
    text = f"{rate.rate:.0%}"
    return f"{text} ({rate.count}/{rate.total})" if counts else text


def _length(d: Distribution) -> str:
    if not d.count:
        return "–"
    return f"{d.min:.0f} / {d.p50:.0f} / {d.p95:.0f} / {d.max:.0f}"


def _latency(d: Distribution) -> str:
    if not d.count or d.p50 is None or d.p95 is None:
        return "–"
    return f"{d.p50 / 1000:.2f} s / {d.p95 / 1000:.2f} s"


def _score(s: MeanScore, *, scale: float = 1.0, digits: int = 2) -> str:
    if s.mean is None:
        return "–"
    return f"{s.mean * scale:.{digits}f} ({s.cases})"


def _cost(s: ModelSummary) -> str:
    c = s.cost
    if c.per_1000_usd is None:
        return "unknown"
    amount = "$0" if c.per_1000_usd == 0 else f"${c.per_1000_usd:,.4f}"
    return f"{amount} ({c.source})"


def _answered(s: ModelSummary) -> str:
    text = f"{s.answered}/{s.cases}"
    if s.errors:
        text += " — " + ", ".join(f"{n} {code}" for code, n in s.errors.items())
    return text


def table(evalset: EvalSet, summaries: Sequence[ModelSummary]) -> Table:
    out = Table(
        title=f"Evaluation set {evalset.name!r}: {len(evalset.cases)} cases",
        caption=(
            "Checks run on each model's first answer, before the engine cleans, re-asks or "
            "repairs it (rules of docs/alt-text-guide.md). chrF is " + REGRESSION_ONLY + "."
        ),
        caption_justify="left",
    )
    out.add_column("metric", no_wrap=True)
    for s in summaries:
        out.add_column(s.model, justify="right")

    def row(name: str, values: list[str], *, end_section: bool = False) -> None:
        out.add_row(name, *values, end_section=end_section)

    row("answered", [_answered(s) for s in summaries])
    row("first answer passes every check", [_pct(s.first_answer_passes) for s in summaries])
    row("re-asked", [_pct(s.reasked) for s in summaries])
    row("needs review (delivered)", [_pct(s.needs_review) for s in summaries])
    row("role accuracy (auto cases)", [_pct(s.role_accuracy, counts=True) for s in summaries])
    row("decorative or not", [_pct(s.decorative_accuracy, counts=True) for s in summaries])
    row("language accuracy", [_pct(s.language_accuracy, counts=True) for s in summaries])
    row("length min / p50 / p95 / max", [_length(s.length) for s in summaries])
    row("OCR agreement (text cases)", [_score(s.ocr_agreement) for s in summaries])
    row("latency p50 / p95", [_latency(s.latency_ms) for s in summaries])
    row("cost per 1,000 images", [_cost(s) for s in summaries])
    row(
        "chrF vs reference (regression-only)",
        [_score(s.reference_chrf, scale=100, digits=1) for s in summaries],
        end_section=True,
    )
    for code, rule, severity in CHECKS:
        suffix = " (flag)" if severity == "flag" else ""
        row(f"{rule:>4} {code}{suffix}", [_pct(s.checks[code]) for s in summaries])
    return out
