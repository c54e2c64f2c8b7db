"""The evaluation set the project ships, and the loader's validation of any set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from alttext.describe import rules
from alttext.describe.rules import LanguageIdentifier, RuleContext, detect_language
from alttext.evaluation.cases import (
    DEFAULT_SET,
    RESOLVED,
    EvalSet,
    EvalSetError,
    image_problems,
    licence_problems,
    load_set,
)
from alttext.evaluation.metrics import truth_texts

MAX_SET_BYTES = 3 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> EvalSet:
    return load_set()


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def test_the_shipped_set_is_large_and_covers_roles_languages_and_kinds(shipped: EvalSet) -> None:
    assert len(shipped.cases) >= 30
    assert set(shipped.roles) == set(RESOLVED)  # every expected role
    assert min(shipped.roles.values()) >= 4
    assert len(shipped.languages) >= 6
    assert {"en", "de", "fr", "es", "ja", "pt"} <= set(shipped.languages)
    assert min(shipped.languages.values()) >= 5
    for kind in ("chart", "screenshot", "logo", "text", "people", "document", "icon"):
        assert shipped.tags.get(kind, 0) >= 1, kind
    # Role accuracy needs auto cases of every role, and some roles are given by the caller.
    auto_roles = {c.expected_role for c in shipped.cases if c.role == "auto"}
    assert auto_roles == set(RESOLVED)
    assert any(c.role != "auto" for c in shipped.cases)
    # OCR agreement needs text images.
    assert sum(1 for c in shipped.cases if truth_texts(c)) >= 10


def test_every_image_exists_decodes_is_small_and_has_a_redistributable_licence(
    shipped: EvalSet,
) -> None:
    assert image_problems(shipped, max_side=768) == []
    assert licence_problems(shipped) == []
    files = [p for p in (DEFAULT_SET / "images").iterdir() if p.is_file()]
    assert {f"images/{p.name}" for p in files} == {c.image for c in shipped.cases}
    assert sum(p.stat().st_size for p in files) < MAX_SET_BYTES
    for path in files:
        with Image.open(path) as img:
            assert img.format in ("JPEG", "PNG"), path.name
    # LICENSES.md, for people, names every image.
    licences = (DEFAULT_SET / "LICENSES.md").read_text(encoding="utf-8")
    for image, source in shipped.images.items():
        assert Path(image).name in licences
        assert source.licence in licences


def test_every_reference_passes_the_engines_checks_in_its_language(
    shipped: EvalSet, identifier: LanguageIdentifier
) -> None:
    """The references are what good alt text looks like: no check and no flag fires on them,
    and the language identifier reads the requested language wherever it can judge."""
    for case in shipped.cases:
        ctx = RuleContext(
            role=case.expected_role,
            max_length=case.max_length,
            language=case.language,
            context=case.context,
            keywords=case.keywords,
        )
        assert rules.check(case.reference, ctx, identifier) == [], case.id
        detected = detect_language(case.reference, identifier)
        if detected is not None:
            assert detected[0] == identifier.label(case.language), case.id


# --- the loader on sets of one's own ---------------------------------------------------------


def _write_set(root: Path, cases: list[dict[str, Any]], **extra: Any) -> Path:
    (root / "images").mkdir(parents=True, exist_ok=True)
    shutil.copy(DEFAULT_SET / "images" / "icon-search.png", root / "images" / "a.png")
    (root / "cases.json").write_text(json.dumps({"cases": cases, **extra}), encoding="utf-8")
    return root


def _case(**overrides: Any) -> dict[str, Any]:
    case: dict[str, Any] = {
        "id": "search",
        "image": "images/a.png",
        "language": "en",
        "role": "functional",
        "reference": "Search",
    }
    case.update(overrides)
    return case


def test_a_minimal_set_loads_with_defaults(tmp_path: Path) -> None:
    loaded = load_set(_write_set(tmp_path, [_case(language="pt-br")]))
    (case,) = loaded.cases
    assert loaded.name == tmp_path.name
    assert case.expected_role == "functional"
    assert case.language == "pt-BR"
    assert case.max_length == 125
    assert loaded.images == {}
    # The file itself can be named too.
    assert load_set(tmp_path / "cases.json").cases == loaded.cases
    # A private set needs no licences, but the check says which are missing.
    assert licence_problems(loaded) == ["images/a.png: no licence entry"]


@pytest.mark.parametrize(
    ("case", "problem"),
    [
        (_case(image="images/missing.png"), "does not exist"),
        (_case(image="../outside.png"), "outside the set's folder"),
        (_case(role="banner"), "'role' must be one of"),
        (_case(role="auto"), "'expected_role' must be one of"),
        (_case(expected_role="text"), "must equal 'role' unless role is auto"),
        (_case(language="klingon"), "'language' must be one supported BCP 47 tag"),
        (_case(reference=""), "exactly when the role is decorative"),
        (_case(role="decorative", reference="Ornament"), "exactly when the role is decorative"),
        (_case(reference="x" * 130), "longer than max_length"),
        (_case(max_length=5), "'max_length' must be an integer"),
        (_case(id="Has Spaces"), "'id' must be"),
        (_case(colour="red"), "unknown field(s) colour"),
        (_case(keywords="a, b"), "'keywords' must be a list"),
    ],
)
def test_an_invalid_case_is_refused_with_a_reason(
    tmp_path: Path, case: dict[str, Any], problem: str
) -> None:
    with pytest.raises(EvalSetError) as caught:
        load_set(_write_set(tmp_path, [case]))
    assert any(problem in p for p in caught.value.problems), caught.value.problems


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    root = _write_set(
        tmp_path,
        [_case(), _case(), _case(id="other", role="nope")],
        images={"images/a.png": {"licence": "CC0-1.0"}},
    )
    with pytest.raises(EvalSetError) as caught:
        load_set(root)
    problems = caught.value.problems
    assert "case 'search': the id is used twice" in problems
    assert any("'role' must be one of" in p for p in problems)
    assert "image 'images/a.png': 'source' is required" in problems
    assert "invalid evaluation set" in str(caught.value)


def test_unreadable_sets_are_refused(tmp_path: Path) -> None:
    with pytest.raises(EvalSetError, match="no such file"):
        load_set(tmp_path / "nothing.json")
    (tmp_path / "cases.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EvalSetError, match="not readable as JSON"):
        load_set(tmp_path)
    (tmp_path / "cases.json").write_text('{"cases": []}', encoding="utf-8")
    with pytest.raises(EvalSetError, match="non-empty list"):
        load_set(tmp_path)


def test_image_problems_finds_broken_and_oversized_images(tmp_path: Path) -> None:
    root = _write_set(tmp_path, [_case(), _case(id="broken", image="images/broken.png")])
    (root / "images" / "broken.png").write_bytes(b"not a png")
    loaded = load_set(root)
    assert image_problems(loaded) == ["images/broken.png: does not decode (UnidentifiedImageError)"]
    assert image_problems(loaded, max_side=50) == [
        "images/a.png: 96x96 is larger than 50 px",
        "images/broken.png: does not decode (UnidentifiedImageError)",
    ]


def test_licence_problems_names_unfree_and_unused_entries(tmp_path: Path) -> None:
    root = _write_set(
        tmp_path,
        [_case()],
        images={
            "images/a.png": {"licence": "CC-BY-NC-4.0", "source": "somewhere"},
            "images/gone.png": {"licence": "CC0-1.0", "source": "somewhere"},
        },
    )
    assert licence_problems(load_set(root)) == [
        "images/a.png: licence 'CC-BY-NC-4.0' is not redistributable",
        "images/gone.png: a licence entry for an image no case uses",
    ]
