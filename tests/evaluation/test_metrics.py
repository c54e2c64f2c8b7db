"""The evaluation's measures on hand-made results: no engine, no network."""

from __future__ import annotations

import pytest

from alttext.describe.providers.base import ModelInfo
from alttext.describe.rules import findings as catalogue
from alttext.evaluation.cases import EvalCase
from alttext.evaluation.metrics import (
    CHECKS,
    chrf,
    ocr_agreement,
    percentile,
    summarise,
    text_similarity,
)
from alttext.evaluation.results import CaseResult
from alttext.evaluation.running import Pricing, pricing_of


def test_checks_cover_every_code_of_the_rules_catalogue_with_its_severity() -> None:
    codes = {code for code, _, _ in CHECKS}
    assert codes == set(catalogue._RULES) | {"missing_language"}
    for code, _, severity in CHECKS:
        if code != "missing_language":
            values = {"length": 1, "limit": 1, "language": "x", "detected": "y", "kinds": "z"}
            assert catalogue.finding(code, **values).severity == severity, code


def test_percentile_is_nearest_rank() -> None:
    values = [5.0, 1.0, 4.0, 2.0, 3.0]
    assert percentile(values, 50) == 3.0
    assert percentile(values, 95) == 5.0
    assert percentile(values, 0) == 1.0
    assert percentile(list(map(float, range(1, 101))), 95) == 95.0
    with pytest.raises(ValueError, match="no values"):
        percentile([], 50)


def test_text_similarity_finds_the_text_inside_a_longer_alt() -> None:
    assert text_similarity("Sign in", 'Form with a blue "Sign in" button.') == 1.0
    # Case, dashes and spacing do not count; a typo costs a little; another text a lot.
    assert text_similarity("OPEN DAILY 9 AM – 6 PM", "Open daily 9 am - 6 pm") == 1.0
    assert 0.9 < text_similarity("Cerrado por vacaciones", "Cerado por vacaciones") < 1.0
    assert text_similarity("Cerrado por vacaciones", "A red sign on a door.") < 0.5
    assert text_similarity("", "anything") == 1.0
    assert text_similarity("words", "") == 0.0
    assert text_similarity("本日休業", "「本日休業」の貼り紙。") == 1.0


def _case(**overrides: object) -> EvalCase:
    values: dict[str, object] = {
        "id": "c",
        "image": "images/c.png",
        "language": "en",
        "role": "informative",
        "expected_role": "informative",
        "reference": "Blue shoe.",
    }
    values.update(overrides)
    return EvalCase(**values)  # type: ignore[arg-type]


def test_ocr_agreement_uses_the_cases_text_else_the_references_quotes() -> None:
    with_text = _case(text="Bitte Schuhe ausziehen", reference="Bitte Schuhe ausziehen")
    assert ocr_agreement(with_text, "Bitte Schuhe ausziehen.") == 1.0
    quoted = _case(reference='Form with a "Sign in" button and a "Forgot password?" link.')
    assert ocr_agreement(quoted, 'Form with a "Sign in" button.') == pytest.approx(
        (1.0 + text_similarity("Forgot password?", 'Form with a "Sign in" button.')) / 2
    )
    assert ocr_agreement(_case(), "Blue shoe.") is None  # no text in the image


def test_chrf_is_one_for_a_copy_and_falls_with_distance() -> None:
    reference = "Bar chart: revenue rising from $1.2M to $2.0M."
    assert chrf(reference, reference) == pytest.approx(1.0)
    near = chrf("Bar chart of revenue, rising from $1.2M to $2.0M.", reference)
    far = chrf("A cat on a windowsill.", reference)
    assert 0.6 < near < 1.0
    assert far < 0.3
    assert chrf("", "") == 1.0
    assert chrf("text", "") == 0.0


def _result(case_id: str, **overrides: object) -> CaseResult:
    values: dict[str, object] = {
        "case_id": case_id,
        "model": "m",
        "latency_ms": 100.0,
        "answered_by": "m",
        "alt_text": "Blue shoe.",
        "role": "informative",
        "attempts": 1,
        "language_expected": "en",
        "language_detected": "en",
        "cost_usd": 0.001,
        "cost_source": "reported",
    }
    values.update(overrides)
    return CaseResult(**values)  # type: ignore[arg-type]


def test_summarise_counts_each_measure_over_its_own_cases() -> None:
    cases = [
        _case(id="a", role="auto", expected_role="informative"),
        _case(id="b", role="auto", expected_role="decorative", reference=""),
        _case(id="c", role="text", expected_role="text", reference="Open", text="Open"),
        _case(id="d"),
        _case(id="e", role="auto", expected_role="text", reference="Sale", text="Sale"),
    ]
    results = [
        _result("a", latency_ms=100.0, findings=("too_long", "hedge"), attempts=2),
        _result("b", alt_text="Grass.", latency_ms=300.0, language_detected=None),
        _result("c", alt_text="Open", role="text", latency_ms=200.0, language_detected=None),
        _result("d", alt_text="Ein blauer Schuh.", language_detected="de", cost_usd=None),
        _result("e", alt_text=None, error="upstream_error", cost_usd=None),
    ]
    s = summarise("m", cases, results)
    assert (s.cases, s.answered, s.errors) == (5, 4, {"upstream_error": 1})
    # Checks: over the four answered cases; "a" raised a check and a flag.
    assert s.checks["too_long"].as_dict() == {"count": 3, "total": 4, "rate": 0.75}
    assert s.checks["hedge"].count == 3
    assert s.checks["url"].count == 4
    assert (s.first_answer_passes.count, s.first_answer_passes.total) == (3, 4)
    assert (s.reasked.count, s.reasked.total) == (1, 4)
    # Role: auto cases only ("a" right, "b" wrong; "e" failed); decorative or not: all answered.
    assert (s.role_accuracy.count, s.role_accuracy.total) == (1, 2)
    assert (s.decorative_accuracy.count, s.decorative_accuracy.total) == (3, 4)
    # Language: only texts the identifier judged ("a" en, "d" de instead of en).
    assert (s.language_accuracy.count, s.language_accuracy.total) == (1, 2)
    assert (s.length.count, s.length.min, s.length.max) == (4, 4.0, 17.0)
    assert (s.ocr_agreement.cases, s.ocr_agreement.mean) == (1, 1.0)
    assert (s.latency_ms.p50, s.latency_ms.p95) == (100.0, 300.0)
    # Cost: the mean of the three priced cases, per 1,000.
    assert s.cost.per_1000_usd == pytest.approx(1.0)
    assert (s.cost.priced_cases, s.cost.source) == (3, "reported")
    assert s.as_dict(results=False)["reference_chrf"]["note"].startswith("regression-only")


def test_cost_sources_are_named_and_unknown_without_prices() -> None:
    cases = [_case(id="a"), _case(id="b")]
    mixed = summarise(
        "m", cases, [_result("a"), _result("b", cost_usd=0.003, cost_source="pricing")]
    )
    assert mixed.cost.source == "mixed"
    assert mixed.cost.per_1000_usd == pytest.approx(2.0)
    unknown = summarise("m", cases, [_result("a", cost_usd=None), _result("b", cost_usd=None)])
    assert (unknown.cost.source, unknown.cost.per_1000_usd) == ("unknown", None)


def test_pricing_from_the_model_listing() -> None:
    info = ModelInfo(id="m", name="m", prompt_price_usd=1e-7, completion_price_usd=4e-7)
    pricing = pricing_of(info)
    assert pricing == Pricing(prompt=1e-7, completion=4e-7, image=0.0)
    assert pricing.cost(1000, 100, images=1) == pytest.approx(1.4e-4)
    assert pricing.cost(None, 100, images=1) is None
    assert pricing_of(ModelInfo(id="m", name="m")) is None


def test_a_model_label_falls_back_to_who_answered() -> None:
    cases = [_case(id="a")]
    assert summarise(None, cases, [_result("a", answered_by="local/rapidocr")]).model == (
        "local/rapidocr"
    )
    assert summarise(
        None, cases, [_result("a", alt_text=None, error="x", answered_by=None)]
    ).model == ("default")
