"""Rule 10 and the language identifier behind it."""

from __future__ import annotations

from alttext.describe.rules import LanguageIdentifier, RuleContext, wrong_language
from alttext.describe.rules.language import (
    MIN_PROBABILITY,
    close_languages,
    grammar_of,
    language_bearing_text,
    requested_probability,
)
from tests.describe.rules.checker import Checker


def test_language_mismatch_is_a_check(check: Checker) -> None:
    de = RuleContext(role="informative", language="de")
    assert "wrong_language" in check.failed("A tabby cat asleep on a sunlit windowsill.", de)
    assert "wrong_language" not in check.failed(
        "Eine getigerte Katze schläft auf einer sonnigen Fensterbank.", de
    )
    assert "wrong_language" not in check.failed(
        "Eine getigerte Katze schläft auf einer sonnigen Fensterbank.",
        RuleContext(role="informative", language="de-AT"),
    )


def test_language_check_ignores_short_texts_and_quotes(
    language_identifier: LanguageIdentifier,
) -> None:
    assert wrong_language("Acme home", "de", language_identifier) is None
    assert (
        wrong_language(
            'Schild mit der Aufschrift "Welcome to our lovely little shop".',
            "de",
            language_identifier,
        )
        is None
    )
    assert (
        wrong_language("A tabby cat asleep on a sunlit windowsill.", "en-GB", language_identifier)
        is None
    )
    assert (
        wrong_language("A tabby cat asleep on a sunlit windowsill.", "tlh", language_identifier)
        is None
    )  # unknown


def test_identifier_names_bcp47_tags_in_its_own_labels(
    language_identifier: LanguageIdentifier,
) -> None:
    assert language_identifier.label("de-AT") == "de"
    assert language_identifier.label(" EN_gb") == "en"
    assert language_identifier.label("nb") == "no"  # py3langid's name for Norwegian
    assert language_identifier.label("tlh") is None  # a language the model does not know
    assert "en" in language_identifier.labels


def test_identifier_classifies_ranks_and_gives_probabilities(
    language_identifier: LanguageIdentifier,
) -> None:
    text = "Eine getigerte Katze schläft auf einer sonnigen Fensterbank."
    lang, prob = language_identifier.classify(text)
    assert lang == "de"
    assert prob > 0.9
    ranked = language_identifier.rank(text)
    assert ranked[0] == (lang, prob)
    assert [p for _, p in ranked] == sorted((p for _, p in ranked), reverse=True)
    assert abs(sum(p for _, p in ranked) - 1.0) < 1e-3
    assert language_identifier.prob(text, "de") == prob
    assert language_identifier.prob(text, "en") < 0.05
    assert language_identifier.prob(text, "tlh") == 0.0


def test_short_english_is_not_accepted_as_german(language_identifier: LanguageIdentifier) -> None:
    # The case: English at 0.6 was "not confidently another language", so it passed.
    text = "Red motorcycle parked on a grassy verge."
    assert language_identifier.classify(text)[1] < 0.9
    assert wrong_language(text, "de", language_identifier) == "en"
    assert wrong_language(text, "en", language_identifier) is None
    assert (
        wrong_language("Rotes Motorrad auf einem Grünstreifen geparkt.", "de", language_identifier)
        is None
    )


def test_judged_by_the_probability_of_the_requested_language(
    language_identifier: LanguageIdentifier,
) -> None:
    text = "Red motorcycle parked on a grassy verge."
    judged = requested_probability(text, "de", language_identifier)
    assert judged is not None
    assert judged[0] < MIN_PROBABILITY
    right = requested_probability(text, "en-GB", language_identifier)
    assert right is not None
    assert right[0] >= MIN_PROBABILITY


def test_close_languages_pass_each_other(language_identifier: LanguageIdentifier) -> None:
    assert "sv" in close_languages("no")
    assert "gl" in close_languages("es")
    assert "bs" in close_languages("sr")
    danish = "Stribet kat sover i en solbeskinnet vindueskarm."
    assert wrong_language(danish, "nb", language_identifier) is None
    assert wrong_language(danish, "fi", language_identifier) is not None


def test_names_numbers_and_brands_carry_no_language() -> None:
    assert language_bearing_text("Red YAMAHA motorcycle on the iPhone 15 box.") == (
        "Red motorcycle on the box."
    )
    # Inside a sentence a capital marks a name, except in German, where every noun has one.
    assert language_bearing_text("Skyline of New York at dusk.") == "Skyline of at dusk."
    assert language_bearing_text("Lake Kawaguchi at dusk.") is None
    assert language_bearing_text("Hund schläft auf Sofa.", names_capitalised=False) == (
        "Hund schläft auf Sofa."
    )


def test_texts_mostly_of_names_are_not_judged(language_identifier: LanguageIdentifier) -> None:
    for tag in ("en", "fr", "pl"):
        assert requested_probability("YAMAHA XSR 900.", tag, language_identifier) is None
        assert requested_probability("New York skyline, 2025.", tag, language_identifier) is None
    # German nouns are capitalised, yet a German text is still judged (and caught as English).
    assert wrong_language("Hund schläft auf dem Sofa.", "en", language_identifier) == "de"


def test_a_text_without_the_requested_script_fails(language_identifier: LanguageIdentifier) -> None:
    assert wrong_language("Red Yamaha motorcycle outdoors.", "ja", language_identifier) is not None
    assert wrong_language("Красный мотоцикл на обочине дороги.", "en", language_identifier)
    assert wrong_language("Acme home", "ja", language_identifier) is None  # a label: too short
    serbian_latin = "Deca igraju fudbal u parku pri zalasku sunca."
    assert wrong_language(serbian_latin, "sr", language_identifier) is None


def test_the_grammar_of_the_requested_language_outweighs_loanwords(
    language_identifier: LanguageIdentifier,
) -> None:
    text = "Croissant and café au lait on a bistro table."
    judged = requested_probability(text, "en", language_identifier)
    assert judged is not None
    assert judged[0] < MIN_PROBABILITY  # the identifier alone would call it French
    assert grammar_of(text, "en")
    assert wrong_language(text, "en", language_identifier) is None
    # One distinctive word is no grammar: a Dutch text with "over" stays Dutch.
    assert not grammar_of("Twee wandelaars steken een houten brug over een bergbeek over.", "en")
