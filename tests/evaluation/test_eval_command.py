"""``alttext eval`` end to end: the real CLI, process, engine and OpenRouter client, against the
fake OpenRouter scripted to answer differently per model (one follows the guide, one does not).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from alttext.cli import app
from alttext.evaluation.cases import DEFAULT_SET, EvalCase, load_set
from alttext.evaluation.metrics import CHECKS
from tests.fakes.openrouter import CATALOGUE, FakeOpenRouter, Reply, run_fake_openrouter

runner = CliRunner()
GOOD = "google/gemini-2.5-flash-lite"
BAD = "qwen/qwen2.5-vl-72b-instruct"
# English, opens with "The image shows", and still too long once that is cut.
RAMBLE = (
    "The image shows a cup of coffee on a saucer, resting on a wooden table in a warm cafe, "
    "with soft light from a window and a small spoon placed beside the handle."
)
# Its answer when asked again: short and clean, but still English.
RETRY = "A cup of coffee on a small wooden table."
CASES: list[dict[str, Any]] = [
    {
        "id": "coffee-en",
        "image": "images/coffee.jpg",
        "language": "en",
        "role": "informative",
        "context": "Our menu of speciality coffees.",
        "reference": "Espresso with crema in a red cup and saucer, a spoon beside it, on wood.",
    },
    {
        "id": "coffee-de",
        "image": "images/coffee.jpg",
        "language": "de",
        "role": "auto",
        "expected_role": "informative",
        "context": "Unsere Kaffeekarte im Überblick.",
        "reference": "Espresso mit Crema in einer roten Tasse mit Untertasse und Löffel auf Holz.",
    },
    {
        "id": "coffee-fr",
        "image": "images/coffee.jpg",
        "language": "fr",
        "role": "informative",
        "context": "Notre carte des cafés de spécialité.",
        "reference": "Un espresso dans une tasse rouge avec sa soucoupe, sur une table en bois.",
    },
    {
        "id": "grass-auto",
        "image": "images/grass.jpg",
        "language": "en",
        "role": "auto",
        "expected_role": "decorative",
        "context": "Background behind the garden page heading.",
        "reference": "",
    },
    {
        "id": "gravel-decorative",
        "image": "images/gravel.jpg",
        "language": "fr",
        "role": "decorative",
        "context": "Texture de fond du pied de page.",
        "reference": "",
    },
    {
        "id": "closed-sign",
        "image": "images/text-closed-es.png",
        "language": "es",
        "role": "auto",
        "expected_role": "text",
        "context": "Aviso en la página de inicio de la tienda.",
        "reference": "Cerrado por vacaciones hasta el 2 de septiembre.",
        "text": "Cerrado por vacaciones hasta el 2 de septiembre.",
    },
    {
        "id": "search-button",
        "image": "images/icon-search.png",
        "language": "en",
        "role": "functional",
        "context": "Site header: logo, main menu and a button.",
        "reference": "Search",
    },
]


def write_set(root: Path, cases: list[dict[str, Any]] = CASES) -> Path:
    (root / "images").mkdir(parents=True)
    for image in {c["image"] for c in cases}:
        shutil.copy(DEFAULT_SET / image, root / image)
    (root / "cases.json").write_text(
        json.dumps({"name": "two-models", "cases": cases}), encoding="utf-8"
    )
    return root


def user_text(body: dict[str, Any]) -> str:
    user = next(m for m in body["messages"] if m["role"] == "user")
    return "".join(p["text"] for p in user["content"] if p["type"] == "text")


def reply(role: str, language: str, text: str, **kwargs: Any) -> Reply:
    content = {"role": role, "text_in_image": None, "alt_texts": {language: text}}
    return Reply(content=json.dumps({**content, "long_description": None}), **kwargs)


def script_models(fake: FakeOpenRouter, cases: tuple[EvalCase, ...], **kwargs: Any) -> None:
    """GOOD answers each case with its reference and role; BAD calls every image informative
    and rambles in English, then answers a re-ask with a short English text."""

    def respond(body: dict[str, Any], model: str) -> Reply:
        prompt = user_text(body)
        case = next(c for c in cases if c.context and c.context in prompt)
        if model == GOOD:
            return reply(case.expected_role, case.language, case.reference, **kwargs)
        text = RETRY if "<previous_answer>" in prompt else RAMBLE
        return reply("informative", case.language, text, **kwargs)

    fake.respond_with(respond)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[FakeOpenRouter]:
    with run_fake_openrouter() as server:
        monkeypatch.setenv("ALTTEXT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
        monkeypatch.setenv("ALTTEXT_ENV", "test")
        monkeypatch.setenv("ALTTEXT_PROVIDER", "openrouter")
        monkeypatch.setenv("ALTTEXT_OPENROUTER_API_KEY", server.api_key)
        monkeypatch.setenv("ALTTEXT_OPENROUTER_BASE_URL", server.base_url)
        monkeypatch.setenv("ALTTEXT_MODELS", f"{GOOD},{BAD}")
        monkeypatch.setenv("ALTTEXT_WORKERS", "2")
        monkeypatch.setenv("COLUMNS", "200")
        yield server


def run_json(*args: str) -> dict[str, Any]:
    result = runner.invoke(app, ["eval", *args, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def rate(summary: dict[str, Any], key: str) -> tuple[int, int]:
    return summary[key]["count"], summary[key]["total"]


def test_two_models_are_scored_apart(fake: FakeOpenRouter, tmp_path: Path) -> None:
    root = write_set(tmp_path / "set")
    script_models(fake, load_set(root).cases)

    report = run_json("--set", str(root), "--models", f"{GOOD},{BAD}", "--concurrency", "3")
    good, bad = report["models"]
    assert (good["model"], bad["model"]) == (GOOD, BAD)
    assert (good["answered_by"], bad["answered_by"]) == ([GOOD], [BAD])

    # Every request named the model under test and kept the privacy routing.
    sent = fake.chat_requests
    assert {r.json["model"] for r in sent} == {GOOD, BAD}
    assert all(r.json["provider"]["data_collection"] == "deny" for r in sent)

    # The good model: every check passes, no re-ask, right roles, languages and text.
    assert (good["cases"], good["answered"], good["errors"]) == (7, 7, {})
    assert rate(good, "first_answer_passes") == (7, 7)
    assert all(c["count"] == 7 for c in good["checks"].values())
    assert rate(good, "reasked") == (0, 7)
    assert rate(good, "role_accuracy") == (3, 3)  # the three auto cases
    assert rate(good, "decorative_accuracy") == (7, 7)
    assert rate(good, "language_accuracy") == (4, 4)  # "Search" is too short to judge
    lengths = sorted(len(c["reference"]) for c in CASES if c["reference"])
    assert good["length"] == {
        "count": 5,
        "min": lengths[0],
        "p50": lengths[2],
        "p95": lengths[-1],
        "max": lengths[-1],
    }
    assert good["ocr_agreement"] == {"cases": 1, "mean": 1.0, "min": 1.0}
    assert good["reference_chrf"]["mean"] == pytest.approx(1.0)

    # The bad model: the slips are counted on its first answers ...
    assert (bad["answered"], bad["errors"]) == (7, {})
    # The caller-decorative case is answered "" by the engine without asking any model.
    assert rate(bad, "first_answer_passes") == (1, 7)
    checks = {code: (c["count"], c["total"]) for code, c in bad["checks"].items()}
    assert checks["redundant_opening"] == (1, 7)
    assert checks["too_long"] == (1, 7)
    assert checks["wrong_language"] == (4, 7)  # de, fr and es
    others = {code for code, _, _ in CHECKS} - {"redundant_opening", "too_long", "wrong_language"}
    assert all(checks[code] == (7, 7) for code in others)
    # ... it was asked again wherever a check failed; its second, shorter answer was delivered,
    # still in English, so only the English cases pass review.
    assert rate(bad, "reasked") == (6, 7)
    assert rate(bad, "needs_review") == (3, 7)
    assert rate(bad, "role_accuracy") == (1, 3)  # right only where "informative" was right
    assert rate(bad, "decorative_accuracy") == (6, 7)
    assert rate(bad, "language_accuracy") == (3, 6)
    n = len(RETRY)
    assert bad["length"] == {"count": 6, "min": n, "p50": n, "p95": n, "max": n}
    by_id = {r["case_id"]: r for r in bad["results"]}
    assert by_id["coffee-de"]["first_text"] == RAMBLE
    assert by_id["coffee-de"]["alt_text"] == RETRY
    assert by_id["coffee-de"]["findings"] == ["redundant_opening", "too_long", "wrong_language"]
    assert bad["ocr_agreement"]["mean"] < 0.6
    assert bad["reference_chrf"]["mean"] < 0.5

    # Cost: what the fake billed, split per model; the re-asking, pricier model costs more.
    for summary in (good, bad):
        cost = summary["cost"]
        assert (cost["source"], cost["priced_cases"]) == ("reported", 7)
        assert cost["per_1000_usd"] == pytest.approx(cost["total_usd"] / 7 * 1000)
        assert sum(r["cost_usd"] for r in summary["results"]) == pytest.approx(cost["total_usd"])
    billed = fake._spent
    assert good["cost"]["total_usd"] + bad["cost"]["total_usd"] == pytest.approx(billed)
    assert bad["cost"]["per_1000_usd"] > 2 * good["cost"]["per_1000_usd"] > 0


def test_cost_falls_back_to_the_models_prices(fake: FakeOpenRouter, tmp_path: Path) -> None:
    cases = [c for c in CASES if c["id"] in ("coffee-en", "search-button")]
    root = write_set(tmp_path / "set", cases)
    script_models(fake, load_set(root).cases, omit_cost=True)

    report = run_json("--set", str(root), "--models", GOOD)
    (summary,) = report["models"]
    pricing = next(m["pricing"] for m in CATALOGUE if m["id"] == GOOD)
    expected = [
        r["input_tokens"] * float(pricing["prompt"])
        + r["output_tokens"] * float(pricing["completion"])
        for r in summary["results"]
    ]
    assert [r["cost_source"] for r in summary["results"]] == ["pricing", "pricing"]
    assert [r["cost_usd"] for r in summary["results"]] == pytest.approx(expected)
    assert summary["cost"]["source"] == "pricing"
    assert summary["cost"]["per_1000_usd"] == pytest.approx(sum(expected) / 2 * 1000)
    assert any(r.path == "/models" for r in fake.requests)


def test_the_table_compares_the_configured_models(fake: FakeOpenRouter, tmp_path: Path) -> None:
    root = write_set(tmp_path / "set")
    script_models(fake, load_set(root).cases)

    result = runner.invoke(app, ["eval", "--set", str(root)])  # ALTTEXT_MODELS: both
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    header = next(line for line in lines if "metric" in line)
    assert header.index(GOOD) < header.index(BAD)

    def row(label: str) -> str:
        return next(line for line in lines if label in line)

    assert "100% (3/3)" in row("role accuracy (auto cases)")
    assert "33% (1/3)" in row("role accuracy (auto cases)")
    assert "50% (3/6)" in row("language accuracy")
    assert "57%" in row("10 wrong_language")
    assert "(reported)" in row("cost per 1,000 images")
    assert "regression-only" in result.stdout


def test_a_model_that_answers_nothing_fails_the_command(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    root = write_set(tmp_path / "set", CASES[:2])
    fake.fail_model(BAD, code=400, message=f"{BAD} is not a valid model ID")
    result = runner.invoke(app, ["eval", "--set", str(root), "--models", f"{GOOD},{BAD}", "--json"])
    assert result.exit_code == 1
    good, bad = json.loads(result.stdout)["models"]
    assert good["answered"] == 2
    assert bad["answered"] == 0
    assert sum(bad["errors"].values()) == 2
    assert all(r["error"] and r["alt_text"] is None for r in bad["results"])


def test_an_invalid_set_is_refused_before_anything_runs(
    fake: FakeOpenRouter, tmp_path: Path
) -> None:
    root = write_set(tmp_path / "set", [{**CASES[0], "role": "banner"}])
    result = runner.invoke(app, ["eval", "--set", str(root)])
    assert result.exit_code == 2
    assert "'role' must be one of" in result.output
    assert fake.chat_requests == []
    result = runner.invoke(app, ["eval", "--set", str(root), "--models", " , "])
    assert result.exit_code == 2


# --- the JSON report's shape, on the offline engine ------------------------------------------


RATE = {"count": int, "total": int, "rate": (float, type(None))}
DISTRIBUTION = {"count": int, "min": object, "p50": object, "p95": object, "max": object}
RESULT_KEYS = {
    "case_id",
    "model",
    "latency_ms",
    "error",
    "error_detail",
    "answered_by",
    "alt_text",
    "role",
    "needs_review",
    "attempts",
    "first_text",
    "first_role",
    "findings",
    "language_expected",
    "language_detected",
    "input_tokens",
    "output_tokens",
    "cost_usd",
    "cost_source",
}


def assert_shape(value: Any, shape: dict[str, Any]) -> None:
    assert set(value) == set(shape), sorted(set(value) ^ set(shape))
    for key, kind in shape.items():
        if isinstance(kind, dict):
            assert_shape(value[key], kind)
        else:
            assert isinstance(value[key], kind), (key, value[key])


def test_json_report_schema(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("ALTTEXT_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'e.db'}")
    monkeypatch.setenv("ALTTEXT_ENV", "test")
    monkeypatch.setenv("ALTTEXT_PROVIDER", "local")
    root = write_set(tmp_path / "set", [CASES[3], CASES[5], CASES[6]])

    report = run_json("--set", str(root))
    assert_shape(
        report,
        {
            "schema_version": int,
            "set": {
                "name": str,
                "path": str,
                "cases": int,
                "languages": dict,
                "roles": dict,
                "tags": dict,
            },
            "provider": str,
            "prompt_version": str,
            "models": list,
        },
    )
    assert report["set"]["cases"] == 3
    assert report["set"]["roles"] == {"decorative": 1, "functional": 1, "text": 1}
    assert report["provider"] == "local"
    (summary,) = report["models"]
    summary_shape: dict[str, Any] = {
        "model": str,
        "requested": type(None),
        "answered_by": list,
        "cases": int,
        "answered": int,
        "errors": dict,
        "first_answer_passes": RATE,
        "checks": dict,
        "reasked": RATE,
        "needs_review": RATE,
        "role_accuracy": RATE,
        "decorative_accuracy": RATE,
        "language_accuracy": RATE,
        "length": DISTRIBUTION,
        "ocr_agreement": {"cases": int, "mean": object, "min": object},
        "latency_ms": DISTRIBUTION,
        "cost": {"per_1000_usd": object, "total_usd": float, "priced_cases": int, "source": str},
        "reference_chrf": {"cases": int, "mean": object, "min": object, "note": str},
        "results": list,
    }
    assert_shape(summary, summary_shape)
    assert summary["model"] == "local/rapidocr"  # no model was named: who answered
    assert list(summary["checks"]) == [code for code, _, _ in CHECKS]
    for check in summary["checks"].values():
        assert_shape(check, {**RATE, "severity": str, "rule": str})
    assert [r["case_id"] for r in summary["results"]] == [
        "grass-auto",
        "closed-sign",
        "search-button",
    ]
    for result in summary["results"]:
        assert set(result) == RESULT_KEYS
        assert isinstance(result["findings"], list)
    assert summary["cost"] == {
        "per_1000_usd": 0.0,
        "total_usd": 0.0,
        "priced_cases": 3,
        "source": "reported",
    }
