"""repair() and cut(): the last resort after the re-ask."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alttext.describe.rules import RuleContext, cut, repair
from alttext.describe.rules.clean import join_lines
from alttext.describe.rules.cut import ends_dangling
from alttext.describe.rules.text import END
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
    sign = 'Sign reading "Welcome to the annual summer festival" above a gate.'
    # Two or more of the quoted words fit: the quotation is closed with an ellipsis.
    assert cut(sign, 40, sentence=True) == 'Sign reading "Welcome to the annual…"'
    # Fewer: the quotation goes, and "reading" with it.
    assert cut(sign, 20, sentence=True) == "Sign."
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


@pytest.mark.parametrize(
    ("text", "limit", "language", "expected"),
    [
        # The page scan: the heading, not a sentence that stops at "Let".
        ("Region-based segmentation Let R be the entire image region.", 30, "en",
         "Region-based segmentation."),
        ("Region-based segmentation\nLet R be the entire image region, and let us split it.", 30,
         "en", "Region-based segmentation."),
        # The medium and the head noun of the subject, not the adjective before it.
        ("Photo of a red Yamaha motorcycle parked on a grassy verge.", 30, "en",
         "Photo of a motorcycle."),
        ("Photo of a red Yamaha motorcycle parked on a grassy verge.", 20, "en",
         "Motorcycle photo."),
        ('Black-and-white photo of a red Yamaha motorcycle with "YAMAHA" on the tank.', 40, "en",
         "Black-and-white photo of a motorcycle."),
        ("Foto de una moto roja aparcada en el arcén de una carretera.", 20, "es",
         "Foto de una moto."),
        ("Photo d'une moto rouge garée sur le bas-côté herbeux d'une route.", 20, "fr",
         "Photo d'une moto."),
        # A whole first sentence beats a longer cut that stops mid-thought ...
        ("Line chart of monthly sales in 2025. Sales rise from 10 to 40 units, peaking in July.",
         60, "en", "Line chart of monthly sales in 2025."),
        # ... until a clause adds enough.
        ("Line chart of monthly sales in 2025. Sales rise from 10 to 40 units, peaking in July.",
         70, "en", "Line chart of monthly sales in 2025. Sales rise from 10 to 40 units."),
        ("Screenshot of the login page with an error message under the password field.", 40,
         "en", "Screenshot of the login page."),
        # Per language: "mit", "der", "sur", "le", "con", "el" never end a text.
        ("Rotes Motorrad mit der Aufschrift auf dem Tank", 24, "de", "Rotes Motorrad."),
        ("Chat tigré endormi sur le rebord de la fenêtre", 28, "fr", "Chat tigré endormi."),
        ("Gato atigrado dormido con el hocico sobre la pata", 30, "es", "Gato atigrado dormido."),
    ],
)  # fmt: skip
def test_cut_chooses_the_best_boundary(text: str, limit: int, language: str, expected: str) -> None:
    out = cut(text, limit, sentence=True, language=language)
    assert out == expected
    assert len(out) <= limit


def test_repair_cuts_in_the_requested_language() -> None:
    ctx = RuleContext(role="informative", max_length=30, language="de-AT")
    assert repair("Foto eines roten Motorrads auf einer Wiese am Straßenrand.", ctx) == (
        "Foto eines roten Motorrads."
    )


_DANGLING_SAMPLE = ["and", "the", "of", "a", "with", "Let", "der", "und", "mit", "le", "et",
                    "sur", "el", "con", "y", "d'une", "is"]  # fmt: skip
_VOCABULARY = [
    *_DANGLING_SAMPLE, "red", "motorcycle", "Photo", "Screenshot", "segmentation", "Region-based",
    "cat", "sofa", "Motorrad", "moto", "rouge", "roja", "YAMAHA", "2025", "x" * 30, "page",
    ",", ";", ":", "-", "—", ".", "!", "?", '"', "“", "”", "(", ")", "«", "»", "\n", "/", "…",
]  # fmt: skip


@settings(max_examples=400, deadline=None)
@given(
    words=st.lists(st.sampled_from(_VOCABULARY), min_size=1, max_size=60),
    limit=st.integers(min_value=20, max_value=160),
    sentence=st.booleans(),
    language=st.sampled_from(["en", "de", "fr", "es", "en-GB", "pl"]),
)
def test_cut_properties(words: list[str], limit: int, sentence: bool, language: str) -> None:
    text = " ".join(words)
    out = cut(text, limit, sentence=sentence, language=language)
    assert len(out) <= limit
    assert "\n" not in out
    if len(text) <= limit or not out or out == join_lines(text):
        return  # it fitted: nothing was cut
    # Never ends on a dangling word of its language.
    assert not ends_dangling(out, language), out
    # Always ends cleanly: a sentence mark, or (a label) a word or a closing mark.
    body = out.rstrip('.!?…"”»')
    assert body, out
    assert body[-1].isalnum() or body[-1] in ")", out
    if sentence:
        assert END.search(out), out
    # No quotation or parenthesis left open.
    assert out.count('"') % 2 == 0
    assert out.count("(") <= out.count(")")
    assert out.count("“") <= out.count("”")
