"""Rule 9: people's attributes and names are flagged unless the context gives them."""

from __future__ import annotations

from alttext.describe.rules import RuleContext
from tests.describe.rules.checker import Checker


def test_person_attributes_are_flagged_unless_the_context_says_so(check: Checker) -> None:
    for text in (
        "An elderly man reading a newspaper on a bench.",
        "A young woman holding a coffee cup.",
        "A Black man smiling at the camera.",
        "A disabled person crossing the street.",
        "Two girls playing football.",
    ):
        assert "person_attributes" in check.flagged(text), text
    with_context = RuleContext(
        role="informative", context="Meet Ana, the elderly woman who runs our bakery"
    )
    assert "person_attributes" not in check.flagged(
        "An elderly woman kneading dough in a bakery.", with_context
    )


def test_white_the_colour_is_not_a_race(check: Checker) -> None:
    assert check.flagged("A white cat on a white sofa.") == set()
    assert check.flagged("Black and white photo of a harbour.") == set()
    assert check.flagged("Person in a black coat walking a dog.") == set()


def test_names_not_in_context_are_flagged(check: Checker) -> None:
    assert "person_name" in check.flagged("Jane Doe speaking at a podium.")
    named = RuleContext(role="informative", context="Keynote by Jane Doe, CTO")
    assert "person_name" not in check.flagged("Jane Doe speaking at a podium.", named)
    # Places, organisations and titles are not people.
    assert "person_name" not in check.flagged("Golden Gate Bridge at sunset.")
    assert "person_name" not in check.flagged("Tourists on Main Street in New York.")
    assert "person_name" not in check.flagged("Museum Of Modern Art entrance.")
    # German capitalises nouns; pairs say nothing there.
    assert "person_name" not in check.flagged(
        "Rotes Fahrrad vor einer Backsteinmauer.", RuleContext(role="informative", language="de")
    )
