"""Rule 10 in the engine: a text in the wrong language is re-asked once, then flagged."""

from __future__ import annotations

from alttext.describe.types import DescribeOptions
from tests.describe.engine_helpers import MakeEngine, png
from tests.describe.scripted_provider import ScriptedProvider, answer

ENGLISH = "Red motorcycle parked on a grassy verge."
GERMAN = "Rotes Motorrad auf einem Grünstreifen am Straßenrand geparkt."


async def test_english_for_german_is_reasked_in_german(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer({"de": ENGLISH}), answer({"de": GERMAN}))
    result = await make(provider).describe(png(), DescribeOptions(languages=("de",)))
    assert result.alt_text == GERMAN
    assert result.needs_review is False
    assert result.attempts == 2
    retry = provider.requests[1].user
    assert "Language: de" in retry
    assert "not in the requested language de (it reads as en)" in retry
    assert ENGLISH in retry  # the previous answer, as data


async def test_still_english_after_the_reask_is_flagged_not_returned_silently(
    make: MakeEngine,
) -> None:
    provider = ScriptedProvider(answer({"de": ENGLISH}), answer({"de": ENGLISH}))
    result = await make(provider).describe(png(), DescribeOptions(languages=("de",)))
    assert result.alt_text == ENGLISH  # nothing better to give; a human decides
    assert result.needs_review is True
    assert "the text is not in the requested language de (it reads as en)" in (
        result.review_reasons
    )
    assert len(provider.requests) == 2  # asked once more, never a third time


async def test_only_the_wrong_language_of_several_is_flagged(make: MakeEngine) -> None:
    texts = {"en": ENGLISH, "de": ENGLISH}
    provider = ScriptedProvider(answer(texts), answer(texts))
    result = await make(provider).describe(png(), DescribeOptions(languages=("en", "de")))
    assert result.review_reasons == [
        "de: the text is not in the requested language de (it reads as en)"
    ]


async def test_short_labels_and_names_are_never_reasked(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer({"de": "YAMAHA XSR 900"}, role="text"))
    result = await make(provider).describe(png(), DescribeOptions(languages=("de",)))
    assert result.needs_review is False
    assert result.attempts == 1
