"""The language check measured on the corpus: the targets hold and docs/quality.md shows them."""

from __future__ import annotations

import pytest

from alttext.describe.rules import LanguageIdentifier
from tests.describe.rules.language_corpus import CORPUS, cases, close
from tests.describe.rules.language_table import (
    QUALITY_PAGE,
    Measurement,
    current_section,
    measure,
    render,
    replace_section,
)


@pytest.fixture(scope="module")
def measured() -> Measurement:
    return measure(LanguageIdentifier())


def test_corpus_is_broad_enough() -> None:
    assert len(CORPUS) >= 20
    for group in (("nb", "da", "sv"), ("es", "gl", "ca"), ("hr", "sr", "bs")):
        assert set(group) <= set(CORPUS)
    assert {"ru", "el", "ar", "he", "hi", "ja", "zh", "ko", "th"} <= set(CORPUS)
    assert all(len(texts) >= 5 for texts in CORPUS.values())
    every = cases()
    assert sum(c.right for c in every) * 2 == sum(not c.right for c in every)
    assert not any(close(c.written_in, c.requested) for c in every if not c.right)


def test_catches_95_percent_with_at_most_2_percent_false_alarms(measured: Measurement) -> None:
    assert measured.catch_rate >= 0.95, [(c.text, c.requested) for c in measured.misses]
    assert measured.false_alarm_rate <= 0.02, [c.text for c in measured.false_alarms]


def test_every_language_passes_its_own_texts(measured: Measurement) -> None:
    assert all(row.passed == row.right for row in measured.rows.values())


def test_quality_page_shows_the_current_measurement(measured: Measurement) -> None:
    page = QUALITY_PAGE.read_text(encoding="utf-8")
    assert current_section(page) == render(measured), (
        "docs/quality.md is stale: run .venv/bin/python -m tests.describe.rules.language_table"
    )


def test_replacing_the_section_keeps_every_other_section() -> None:
    page = "# Quality\n\nIntro.\n\n## Language check\n\nold\n\n## The offline engine\n\nkept\n"
    out = replace_section(page, "## Language check\n\nnew\n")
    assert (
        out == "# Quality\n\nIntro.\n\n## Language check\n\nnew\n\n## The offline engine\n\nkept\n"
    )
    assert replace_section("# Quality\n", "## Language check\n\nnew\n") == (
        "# Quality\n\n## Language check\n\nnew\n"
    )
