"""Rule 10 and the language identifier behind it."""

from __future__ import annotations

from alttext.describe.rules import LanguageIdentifier, RuleContext, wrong_language
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
