"""BCP 47 tags: the one primary-subtag helper every part of describe/ compares with."""

from __future__ import annotations

import pytest

from alttext.describe.languages import primary_subtag


@pytest.mark.parametrize(
    ("tag", "primary"),
    [("en", "en"), ("pt-BR", "pt"), ("zh-Hant-TW", "zh"), ("EN_us", "en"), (" De ", "de")],
)
def test_primary_subtag(tag: str, primary: str) -> None:
    assert primary_subtag(tag) == primary
