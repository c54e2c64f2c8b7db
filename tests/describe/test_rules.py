"""The deterministic rules of ALT_TEXT_GUIDE.md on model-like outputs."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alttext.describe.rules import (
    RuleContext,
    check,
    clean,
    copies_context,
    cut,
    quote_in_ocr,
    repair,
    wrong_language,
)

INFO = RuleContext(role="informative")


def codes(text: str, ctx: RuleContext = INFO) -> set[str]:
    return {f.code for f in check(text, ctx)}


def failed(text: str, ctx: RuleContext = INFO) -> set[str]:
    return {f.code for f in check(text, ctx) if f.severity == "check"}


def flagged(text: str, ctx: RuleContext = INFO) -> set[str]:
    return {f.code for f in check(text, ctx) if f.severity == "flag"}


# --------------------------------------------------------------------------- clean


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("The image shows a tabby cat on a windowsill.", "A tabby cat on a windowsill."),
        ('"Alt text: A red bicycle."', "A red bicycle."),
        ("Alt text: A red bicycle.", "A red bicycle."),
        ("Description: A mountain lake at dawn.", "A mountain lake at dawn."),
        ("Caption: “A mountain lake at dawn.”", "A mountain lake at dawn."),
        ("Here is an image of a dog running on a beach", "A dog running on a beach."),
        ("A picture of a cat sleeping.", "A cat sleeping."),
        ("This photo shows two hikers on a ridge.", "Two hikers on a ridge."),
        ("The image depicts a sunset over the sea.", "A sunset over the sea."),
        ("I can see a red car parked outside.", "A red car parked outside."),
        ("An image showing a bowl of fruit.", "A bowl of fruit."),
        ("Photo of a bridge at night.", "A bridge at night."),
        ("In this image, a child flies a kite.", "A child flies a kite."),
        ("Sure! Here's the alt text: A cat on a mat.", "A cat on a mat."),
        ("This is a photograph of a lighthouse.", "A lighthouse."),
        # Medium words that carry meaning stay.
        ("Screenshot of a login form.", "Screenshot of a login form."),
        ("Black-and-white photo of a harbour.", "Black-and-white photo of a harbour."),
        ("Line chart of revenue by month.", "Line chart of revenue by month."),
        ("Oil painting of a ship in a storm.", "Oil painting of a ship in a storm."),
        # Formatting.
        ("**Bold** text\nline two", "Bold text line two."),
        ("A *small* _red_ boat on a ~~calm~~ lake.", "A small red boat on a calm lake."),
        ("# A heading about cats", "A heading about cats."),
        ("<p>A <b>black</b> cat on a rug.</p>", "A black cat on a rug."),
        ("Tom &amp; Jerry poster on a wall.", "Tom & Jerry poster on a wall."),
        ("[Acme](https://acme.example) home", "Acme home"),
        ("`Search`", "Search"),
        ("```\nA cat on a sofa.\n```", "A cat on a sofa."),
        ("A happy dog 🐶 on the beach 🌊", "A happy dog on the beach."),
        ("Family photo 👨‍👩‍👧 at the lake.", "Family photo at the lake."),
        ("  A   cat\r\n on\ta mat. ", "A cat on a mat."),
        # Quotes inside the text are the image's words, not a wrapper.
        ('"Open" sign on a glass door', '"Open" sign on a glass door.'),
        ("'A dog's favourite toy'", "A dog's favourite toy."),
        # Short labels need no period; names keep their casing.
        ("Acme home", "Acme home"),
        ("iPhone 15 in blue on a desk", "iPhone 15 in blue on a desk."),
        ("the image shows eBay's logo", "eBay's logo"),
        ("", ""),
        ("  ...  ", ""),
    ],
)
def test_clean(raw: str, expected: str) -> None:
    assert clean(raw) == expected


def test_clean_uses_the_role_for_labels() -> None:
    assert clean("Download the 2025 report (PDF)", role="functional") == (
        "Download the 2025 report (PDF)"
    )
    assert clean("Download the 2025 report (PDF)", role="informative") == (
        "Download the 2025 report (PDF)."
    )
    assert clean("decorative image", role="decorative") == ""
    assert clean("  ", role="decorative") == ""


def test_clean_passes_and_is_stable_on_good_text() -> None:
    good = "Blue women's trail running shoe with a thick lugged sole, side view."
    assert clean(good) == good
    assert clean(clean("The image shows a cat.")) == clean("The image shows a cat.")


# --------------------------------------------------------------------------- check


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
def test_good_texts_pass(text: str) -> None:
    ctx = RuleContext(role="informative", context="Trail running shoe, women's", max_length=125)
    assert check(text, ctx) == []


def test_decorative_must_be_exactly_empty() -> None:
    dec = RuleContext(role="decorative")
    assert check("", dec) == []
    for text in (" ", "decorative image", "image"):
        assert failed(text, dec) == {"decorative_not_empty"}


def test_empty_text_fails_for_a_non_decorative_role() -> None:
    for role in ("informative", "functional", "text", "complex"):
        assert failed("", RuleContext(role=role)) == {"empty"}  # type: ignore[arg-type]


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
def test_check_failures(text: str, code: str) -> None:
    assert code in failed(text)


def test_url_is_not_also_reported_as_a_file_name() -> None:
    assert failed("A cat, see https://example.com/cat.png now.") == {"url"}


def test_length_limit() -> None:
    ctx = RuleContext(role="informative", max_length=40)
    text = "A tabby cat asleep on a sunlit windowsill with plants."
    findings = [f for f in check(text, ctx) if f.code == "too_long"]
    assert findings
    assert findings[0].message == (f"the text is {len(text)} characters long; the limit is 40")
    assert "too_long" not in codes(text[:40].rstrip() + ".", RuleContext(role="informative"))


def test_end_punctuation_exemptions() -> None:
    functional = RuleContext(role="functional")
    assert "no_end_punctuation" not in codes("Search", functional)
    assert "no_end_punctuation" not in codes("Download the 2025 report (PDF)", functional)
    assert "no_end_punctuation" not in codes("Acme home", INFO)
    assert "no_end_punctuation" in codes("A dog sleeping on a porch", INFO)
    for ending in (".", "!", "?", '."', "…"):
        assert "no_end_punctuation" not in codes("A dog sleeping on a porch" + ending, INFO)


def test_functional_icon_description_fails() -> None:
    functional = RuleContext(role="functional")
    assert "functional_describes_icon" in failed("Magnifying glass icon", functional)
    assert failed("Search", functional) == set()


def test_copy_of_context() -> None:
    context = "Our team at the 2024 summit in Berlin, where we launched the new product line."
    ctx = RuleContext(role="informative", context=context)
    assert "copies_context" in failed("Our team at the 2024 summit in Berlin.", ctx)
    assert "copies_context" in failed(context, ctx)
    assert "copies_context" in failed(
        "Trail running shoe, women's.",
        RuleContext(role="informative", context="Women's trail running shoe"),
    )
    assert "copies_context" not in failed(
        "Twelve people in matching blue shirts waving on a stage.", ctx
    )
    # A logo legitimately repeats the name from the context.
    assert "copies_context" not in failed(
        "Acme home", RuleContext(role="functional", context="Acme home")
    )


def test_copies_context_thresholds() -> None:
    assert copies_context("Blue trail running shoe", "Blue trail running shoe for women")
    assert not copies_context("A red bicycle.", "We sell a red bicycle and more.")  # < 4 words
    assert not copies_context(
        "Blue trail running shoe with a thick lugged sole, side view.", "Trail running shoe"
    )
    assert not copies_context("anything", None)


def test_language_mismatch_is_a_check() -> None:
    de = RuleContext(role="informative", language="de")
    assert "wrong_language" in failed("A tabby cat asleep on a sunlit windowsill.", de)
    assert "wrong_language" not in failed(
        "Eine getigerte Katze schläft auf einer sonnigen Fensterbank.", de
    )
    assert "wrong_language" not in failed(
        "Eine getigerte Katze schläft auf einer sonnigen Fensterbank.",
        RuleContext(role="informative", language="de-AT"),
    )


def test_language_check_ignores_short_texts_and_quotes() -> None:
    assert wrong_language("Acme home", "de") is None
    assert (
        wrong_language('Schild mit der Aufschrift "Welcome to our lovely little shop".', "de")
        is None
    )
    assert wrong_language("A tabby cat asleep on a sunlit windowsill.", "en-GB") is None
    assert wrong_language("A tabby cat asleep on a sunlit windowsill.", "tlh") is None  # unknown


def test_quoted_text_is_cross_checked_with_ocr() -> None:
    text = 'Shop window with a sign reading "Grand Opening Sale".'
    ok = RuleContext(role="informative", ocr_text="GRAND OPENING\nSALE 50% OFF")
    assert failed(text, ok) == set()
    # Small OCR errors are tolerated.
    assert failed(text, RuleContext(role="informative", ocr_text="GRAND 0PENING SALF")) == set()
    wrong = RuleContext(role="informative", ocr_text="CLOSED FOR REPAIRS")
    assert "quote_not_in_image" in failed(text, wrong)
    nothing = RuleContext(role="informative", ocr_text="")
    assert "quote_unverified" in flagged(text, nothing)
    assert "quote" not in " ".join(codes(text))  # no OCR ran: nothing to compare


def test_quote_in_ocr() -> None:
    assert quote_in_ocr("Open", "OPEN 9-5")
    assert quote_in_ocr("Open now", "OPENNOW")
    assert quote_in_ocr("Welcome to Springfield", "WELC0ME TO SPRINGFIELD")
    assert not quote_in_ocr("Welcome to Shelbyville", "WELCOME TO SPRINGFIELD")
    assert not quote_in_ocr("Exit", "")


def test_captcha_must_not_be_transcribed() -> None:
    ctx = RuleContext(role="functional", context="Sign-up form CAPTCHA")
    assert "captcha_transcribed" in failed('CAPTCHA showing "x7Gk2p"', ctx)
    assert "captcha_transcribed" not in failed("CAPTCHA: type the characters shown", ctx)


def test_hedges_are_flagged_not_failed() -> None:
    for text in (
        "A bird that appears to be a heron standing in shallow water.",
        "Possibly a heron standing in shallow water.",
        "A heron, likely juvenile, standing in shallow water.",
        "A bird that might be a heron standing in shallow water.",
    ):
        assert "hedge" in flagged(text), text
        assert "hedge" not in failed(text)


def test_hedge_flag_keeps_the_text() -> None:
    text = "A bird that appears to be a heron standing in shallow water."
    assert clean(text) == text


def test_keyword_stuffing_is_flagged() -> None:
    ctx = RuleContext(role="informative", keywords=("running shoe", "trail shoe"))
    assert "keyword_stuffing" in flagged(
        "Running shoe, trail shoe, women's running shoe, blue shoe.", ctx
    )
    assert "repeated_word" in flagged("Shoe, shoe, and another shoe on a shelf.", ctx)
    assert flagged("Blue trail running shoe with a thick lugged sole.", ctx) == set()
    assert flagged("Bowl of apples, pears, grapes and plums.") == set()


def test_person_attributes_are_flagged_unless_the_context_says_so() -> None:
    for text in (
        "An elderly man reading a newspaper on a bench.",
        "A young woman holding a coffee cup.",
        "A Black man smiling at the camera.",
        "A disabled person crossing the street.",
        "Two girls playing football.",
    ):
        assert "person_attributes" in flagged(text), text
    with_context = RuleContext(
        role="informative", context="Meet Ana, the elderly woman who runs our bakery"
    )
    assert "person_attributes" not in flagged(
        "An elderly woman kneading dough in a bakery.", with_context
    )


def test_white_the_colour_is_not_a_race() -> None:
    assert flagged("A white cat on a white sofa.") == set()
    assert flagged("Black and white photo of a harbour.") == set()
    assert flagged("Person in a black coat walking a dog.") == set()


def test_names_not_in_context_are_flagged() -> None:
    assert "person_name" in flagged("Jane Doe speaking at a podium.")
    named = RuleContext(role="informative", context="Keynote by Jane Doe, CTO")
    assert "person_name" not in flagged("Jane Doe speaking at a podium.", named)
    # Places, organisations and titles are not people.
    assert "person_name" not in flagged("Golden Gate Bridge at sunset.")
    assert "person_name" not in flagged("Tourists on Main Street in New York.")
    assert "person_name" not in flagged("Museum Of Modern Art entrance.")
    # German capitalises nouns; pairs say nothing there.
    assert "person_name" not in flagged(
        "Rotes Fahrrad vor einer Backsteinmauer.", RuleContext(role="informative", language="de")
    )


def test_bare_camera_model_is_flagged_unless_context_names_it() -> None:
    assert "camera_name" in flagged("A blue iPhone 15 lying on a wooden desk.")
    product = RuleContext(role="informative", context="iPhone 15 cases")
    assert flagged("A blue iPhone 15 lying on a wooden desk.", product) == set()


# --------------------------------------------------------------------------- repair


def test_repair_cuts_at_a_word_boundary_within_the_limit() -> None:
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


def test_repair_removes_urls_file_names_and_camera_details() -> None:
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
