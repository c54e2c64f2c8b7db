"""clean(): the repairs that never change meaning, on model-like outputs."""

from __future__ import annotations

import pytest

from alttext.describe.rules import clean


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


def test_hedge_flag_keeps_the_text() -> None:
    text = "A bird that appears to be a heron standing in shallow water."
    assert clean(text) == text
