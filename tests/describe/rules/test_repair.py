"""repair() and cut(): the last resort after the re-ask."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alttext.describe.rules import RuleContext, cut, repair
from tests.describe.rules.checker import INFO, Checker


def test_repair_cuts_at_a_word_boundary_within_the_limit(check: Checker) -> None:
    text = (
        "A very long description of a tabby cat sleeping on a sunlit windowsill with plants, "
        "a cup of tea, and a book about gardening, next to an open window."
    )
    ctx = RuleContext(role="informative", max_length=100)
    fixed = repair(text, ctx)
    assert len(fixed) <= 100
    assert fixed == (
        "A very long description of a tabby cat sleeping on a sunlit windowsill with plants, "
        "a cup of tea."
    )
    assert check(fixed, ctx) == []


@pytest.mark.parametrize("limit", [20, 30, 57, 61, 90])
def test_cut_never_leaves_a_dangling_word(limit: int) -> None:
    text = "A dog and a cat with a ball of yarn, on the rug in front of the fire, and a lamp."
    out = cut(text, limit, sentence=True)
    assert len(out) <= limit
    assert out.endswith(".")
    last = out.rstrip(".").split()[-1].lower()
    assert last not in {"and", "a", "the", "of", "with", "on", "in"}
    assert not out.rstrip(".").endswith(",")


def test_cut_closes_no_quote_and_labels_get_no_period() -> None:
    assert cut(
        'Sign reading "Welcome to the annual summer festival" above a gate.', 40, sentence=True
    ) == ("Sign reading.")
    assert cut("Download the annual report for 2025 (PDF)", 30, sentence=False) == (
        "Download the annual report"
    )
    assert cut("x" * 50, 20, sentence=False) == "x" * 20


def test_repair_removes_urls_file_names_and_camera_details(check: Checker) -> None:
    out = repair("IMG_1234.jpg A cat on a sofa, see https://example.com/a.png", INFO)
    assert out == "A cat on a sofa."
    out = repair("A cat on a sofa, shot on iPhone 15 Pro, f/1.8.", INFO)
    assert out == "A cat on a sofa."
    assert check(out, INFO) == []


def test_repair_empties_placeholders_and_decorative() -> None:
    assert repair("Image.", INFO) == ""
    assert repair("IMG_1234.jpg", INFO) == ""
    assert repair("decorative image", RuleContext(role="decorative")) == ""


@settings(max_examples=150, deadline=None)
@given(
    text=st.lists(
        st.sampled_from([*"abcdefgh ,.;:!?\"'()-\nXYZ😀", "Image of ", "http://x.y/ ", "word "]),
        max_size=120,
    ).map("".join),
    limit=st.integers(min_value=20, max_value=200),
)
def test_repair_never_exceeds_the_limit(text: str, limit: int) -> None:
    out = repair(text, RuleContext(role="informative", max_length=limit))
    assert len(out) <= limit
    assert "\n" not in out
    assert "😀" not in out
    assert "http" not in out
