"""check(): every rule a cleaned text still breaks, and whether it is a check or a flag."""

from __future__ import annotations

import pytest

from alttext.describe.rules import RuleContext, copies_context, quote_in_ocr
from tests.describe.rules.checker import INFO, Checker


@pytest.mark.parametrize(
    "text",
    [
        "Tabby cat asleep on a sunlit windowsill.",
        "Blue women's trail running shoe with a thick lugged sole, side view.",
        "Bar chart: 2025 revenue by quarter, rising from $1.2M to $2.0M.",
        "Screenshot of a login form with email and password fields.",
        "Golden retriever puppy chewing a red rope toy.",
        "Tabby cat",
    ],
)
def test_good_texts_pass(check: Checker, text: str) -> None:
    ctx = RuleContext(role="informative", context="Trail running shoe, women's", max_length=125)
    assert check(text, ctx) == []


def test_decorative_must_be_exactly_empty(check: Checker) -> None:
    dec = RuleContext(role="decorative")
    assert check("", dec) == []
    for text in (" ", "decorative image", "image"):
        assert check.failed(text, dec) == {"decorative_not_empty"}


def test_empty_text_fails_for_a_non_decorative_role(check: Checker) -> None:
    for role in ("informative", "functional", "text", "complex"):
        assert check.failed("", RuleContext(role=role)) == {"empty"}  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("Image of a cat on a sofa.", "redundant_opening"),
        ("The image shows a cat on a sofa.", "redundant_opening"),
        ("Here is a cat on a sofa.", "redundant_opening"),
        ("I can see a cat on a sofa.", "redundant_opening"),
        ("Alt text: a cat on a sofa.", "wrapper"),
        ('"A cat on a sofa."', "wrapper"),
        ("A **cat** on a sofa.", "markdown"),
        ("A [cat](x) on a sofa.", "markdown"),
        ("A <b>cat</b> on a sofa.", "html"),
        ("A cat\non a sofa.", "line_break"),
        ("A cat on a sofa 😺.", "emoji"),
        ("IMG_1234 a cat on a sofa.", "file_name"),
        ("A cat on a sofa, cat-photo.JPG.", "file_name"),
        ("A cat on a sofa DSC01234.", "file_name"),
        ("A cat on a sofa, see https://example.com/cat.", "url"),
        ("A cat on a sofa at www.example.com today.", "url"),
        ("A cat on a sofa, shot on iPhone 15 Pro.", "camera_details"),
        ("A cat on a sofa, taken with a Canon EOS R5.", "camera_details"),
        ("A cat on a sofa (f/1.8, ISO 100).", "camera_details"),
        ("Image.", "placeholder"),
        ("photo", "placeholder"),
        ("Untitled", "placeholder"),
        ("IMG 3", "placeholder"),
        ("Logo", "placeholder"),
        ("A cat sleeping on a red sofa in a bright living room", "no_end_punctuation"),
    ],
)
def test_check_failures(check: Checker, text: str, code: str) -> None:
    assert code in check.failed(text)


def test_url_is_not_also_reported_as_a_file_name(check: Checker) -> None:
    assert check.failed("A cat, see https://example.com/cat.png now.") == {"url"}


def test_length_limit(check: Checker) -> None:
    ctx = RuleContext(role="informative", max_length=40)
    text = "A tabby cat asleep on a sunlit windowsill with plants."
    findings = [f for f in check(text, ctx) if f.code == "too_long"]
    assert findings
    assert findings[0].message == (f"the text is {len(text)} characters long; the limit is 40")
    assert "too_long" not in check.codes(text[:40].rstrip() + ".", RuleContext(role="informative"))


def test_end_punctuation_exemptions(check: Checker) -> None:
    functional = RuleContext(role="functional")
    assert "no_end_punctuation" not in check.codes("Search", functional)
    assert "no_end_punctuation" not in check.codes("Download the 2025 report (PDF)", functional)
    assert "no_end_punctuation" not in check.codes("Acme home", INFO)
    assert "no_end_punctuation" in check.codes("A dog sleeping on a porch", INFO)
    for ending in (".", "!", "?", '."', "…"):
        assert "no_end_punctuation" not in check.codes("A dog sleeping on a porch" + ending, INFO)


def test_functional_icon_description_fails(check: Checker) -> None:
    functional = RuleContext(role="functional")
    assert "functional_describes_icon" in check.failed("Magnifying glass icon", functional)
    assert check.failed("Search", functional) == set()


def test_copy_of_context(check: Checker) -> None:
    context = "Our team at the 2024 summit in Berlin, where we launched the new product line."
    ctx = RuleContext(role="informative", context=context)
    assert "copies_context" in check.failed("Our team at the 2024 summit in Berlin.", ctx)
    assert "copies_context" in check.failed(context, ctx)
    assert "copies_context" in check.failed(
        "Trail running shoe, women's.",
        RuleContext(role="informative", context="Women's trail running shoe"),
    )
    assert "copies_context" not in check.failed(
        "Twelve people in matching blue shirts waving on a stage.", ctx
    )
    # A logo legitimately repeats the name from the context.
    assert "copies_context" not in check.failed(
        "Acme home", RuleContext(role="functional", context="Acme home")
    )


def test_copies_context_thresholds() -> None:
    assert copies_context("Blue trail running shoe", "Blue trail running shoe for women")
    assert not copies_context("A red bicycle.", "We sell a red bicycle and more.")  # < 4 words
    assert not copies_context(
        "Blue trail running shoe with a thick lugged sole, side view.", "Trail running shoe"
    )
    assert not copies_context("anything", None)


def test_quoted_text_is_cross_checked_with_ocr(check: Checker) -> None:
    text = 'Shop window with a sign reading "Grand Opening Sale".'
    ok = RuleContext(role="informative", ocr_text="GRAND OPENING\nSALE 50% OFF")
    assert check.failed(text, ok) == set()
    # Small OCR errors are tolerated.
    assert (
        check.failed(text, RuleContext(role="informative", ocr_text="GRAND 0PENING SALF")) == set()
    )
    wrong = RuleContext(role="informative", ocr_text="CLOSED FOR REPAIRS")
    assert "quote_not_in_image" in check.failed(text, wrong)
    nothing = RuleContext(role="informative", ocr_text="")
    assert "quote_unverified" in check.flagged(text, nothing)
    assert "quote" not in " ".join(check.codes(text))  # no OCR ran: nothing to compare


def test_quote_in_ocr() -> None:
    assert quote_in_ocr("Open", "OPEN 9-5")
    assert quote_in_ocr("Open now", "OPENNOW")
    assert quote_in_ocr("Welcome to Springfield", "WELC0ME TO SPRINGFIELD")
    assert not quote_in_ocr("Welcome to Shelbyville", "WELCOME TO SPRINGFIELD")
    assert not quote_in_ocr("Exit", "")


def test_captcha_must_not_be_transcribed(check: Checker) -> None:
    ctx = RuleContext(role="functional", context="Sign-up form CAPTCHA")
    assert "captcha_transcribed" in check.failed('CAPTCHA showing "x7Gk2p"', ctx)
    assert "captcha_transcribed" not in check.failed("CAPTCHA: type the characters shown", ctx)


def test_hedges_are_flagged_not_failed(check: Checker) -> None:
    for text in (
        "A bird that appears to be a heron standing in shallow water.",
        "Possibly a heron standing in shallow water.",
        "A heron, likely juvenile, standing in shallow water.",
        "A bird that might be a heron standing in shallow water.",
    ):
        assert "hedge" in check.flagged(text), text
        assert "hedge" not in check.failed(text)


def test_keyword_stuffing_is_flagged(check: Checker) -> None:
    ctx = RuleContext(role="informative", keywords=("running shoe", "trail shoe"))
    assert "keyword_stuffing" in check.flagged(
        "Running shoe, trail shoe, women's running shoe, blue shoe.", ctx
    )
    assert "repeated_word" in check.flagged("Shoe, shoe, and another shoe on a shelf.", ctx)
    assert check.flagged("Blue trail running shoe with a thick lugged sole.", ctx) == set()
    assert check.flagged("Bowl of apples, pears, grapes and plums.") == set()


def test_bare_camera_model_is_flagged_unless_context_names_it(check: Checker) -> None:
    assert "camera_name" in check.flagged("A blue iPhone 15 lying on a wooden desk.")
    product = RuleContext(role="informative", context="iPhone 15 cases")
    assert check.flagged("A blue iPhone 15 lying on a wooden desk.", product) == set()
