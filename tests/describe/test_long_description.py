"""``long_description``: asked for when owed, read in any shape, never silently null."""

from __future__ import annotations

import json

import aiohttp
import pytest

from alttext.describe.engine import (
    LONG_FROM_TEXT,
    NO_LONG_CUT_OFF,
    NO_LONG_GIVEN,
    parse_answer,
)
from alttext.describe.prompt import build_prompt, max_tokens_for, wants_long_description
from alttext.describe.providers.base import ModelReply
from alttext.describe.providers.openrouter import ChatCompletionsProvider, ChatConfig
from alttext.describe.types import DescribeOptions
from tests.describe.engine_helpers import FakeOcr, MakeEngine, page_png, photo_png
from tests.describe.scripted_provider import ScriptedProvider, answer
from tests.fakes.openrouter import FakeOpenRouter, Reply

CHART = "Bar chart: 2025 revenue by quarter, rising from $1.2M to $2.0M."
BARS = "Q1 $1.2M, Q2 $1.5M, Q3 $1.7M, Q4 $2.0M."


def test_owed_when_asked_for_or_the_role_is_complex() -> None:
    assert wants_long_description(DescribeOptions(long_description=True))
    assert wants_long_description(DescribeOptions(role="complex"))
    assert not wants_long_description(DescribeOptions())
    complex_ = build_prompt(DescribeOptions(role="complex"), text_heavy=False)
    assert "long_description: required" in complex_.user
    assert complex_.max_tokens >= max_tokens_for(DescribeOptions(), text_heavy=False) + 800
    assert "long_description: null." in build_prompt(DescribeOptions(), text_heavy=False).user


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (BARS, BARS),
        (["Q1 $1.2M", "Q2 $1.5M"], "Q1 $1.2M\nQ2 $1.5M"),
        ({"Q1": "$1.2M", "Q2": 1.5}, "Q1: $1.2M\nQ2: 1.5"),
        ("null", None),
        (42, None),
    ],
)
def test_parser_reads_the_shapes_models_send(value: object, expected: str | None) -> None:
    content = json.dumps({"role": "complex", "alt_texts": {"en": CHART}, "long_description": value})
    assert parse_answer(content, ["en"]).long_description == expected


def test_parser_reads_other_keys_models_use() -> None:
    content = json.dumps({"alt_texts": {"en": CHART}, "longDescription": BARS})
    assert parse_answer(content, ["en"]).long_description == BARS


def test_a_cut_off_answer_keeps_only_what_arrived_whole() -> None:
    whole = answer(CHART, role="complex", long_description=BARS * 40)
    cut = whole[: whole.index("Q3")]
    parsed = parse_answer(cut, ["en"], truncated=True)
    assert parsed.texts == {"en": CHART}
    assert parsed.role == "complex"
    assert parsed.long_description is None
    # Cut before the alt text closed: nothing is taken as alt text, not even the raw JSON.
    early = parse_answer(whole[: whole.index("rising")], ["en"], truncated=True)
    assert early.texts == {"en": None}


async def test_complex_role_gets_its_long_description(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer(CHART, role="complex", long_description=BARS))
    result = await make(provider).describe(photo_png(), DescribeOptions(role="complex"))
    assert result.long_description == BARS
    assert result.needs_review is False
    assert "long_description: required" in provider.requests[0].user


async def test_none_given_says_why(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer(CHART, role="complex"))
    result = await make(provider).describe(photo_png(), DescribeOptions(role="complex"))
    assert result.long_description is None
    assert result.needs_review is True
    assert result.review_reasons == [NO_LONG_GIVEN]


async def test_not_asked_for_stays_null_without_a_reason(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer(CHART, role="informative"))
    result = await make(provider).describe(photo_png(), DescribeOptions(role="informative"))
    assert result.long_description is None
    assert result.review_reasons == []


async def test_a_page_gets_the_text_read_in_it(make: MakeEngine) -> None:
    ocr = FakeOcr("Region-based segmentation\nLet R be the entire image region.")
    provider = ScriptedProvider(answer("Textbook page on region-based segmentation.", role="text"))
    result = await make(provider, ocr=ocr).describe(
        page_png(), DescribeOptions(long_description=True)
    )
    assert result.long_description == (
        "Region-based segmentation\nLet R be the entire image region."
    )
    assert LONG_FROM_TEXT in result.review_reasons


async def test_a_page_without_ocr_uses_the_models_transcription(make: MakeEngine) -> None:
    provider = ScriptedProvider(
        answer("Page on segmentation.", role="text", text_in_image="Region-based segmentation")
    )
    result = await make(provider).describe(page_png(), DescribeOptions(long_description=True))
    assert result.long_description == "Region-based segmentation"
    assert LONG_FROM_TEXT in result.review_reasons


async def test_decorative_owes_none_but_says_so_when_asked(make: MakeEngine) -> None:
    provider = ScriptedProvider(answer("", role="decorative"))
    result = await make(provider).describe(photo_png(), DescribeOptions(long_description=True))
    assert result.decorative is True
    assert result.long_description is None
    assert result.review_reasons == ["no long description: the image is decorative"]


async def test_a_cut_off_answer_keeps_the_alt_and_says_what_was_lost(make: MakeEngine) -> None:
    whole = answer(CHART, role="complex", long_description=BARS * 40)
    reply = ModelReply(whole[: whole.index("Q3")], "m/one", truncated=True)
    provider = ScriptedProvider(reply)
    result = await make(provider).describe(photo_png(), DescribeOptions(role="complex"))
    assert result.alt_text == CHART
    assert result.long_description is None
    assert result.review_reasons == [NO_LONG_CUT_OFF]
    assert result.attempts == 1


async def test_the_providers_own_reason_wins(make: MakeEngine) -> None:
    reply = ModelReply(
        answer(CHART, role="complex"),
        "local/rapidocr",
        no_long_description="offline engine cannot describe charts; no long description",
    )
    provider = ScriptedProvider(reply, name="local")
    result = await make(provider).describe(photo_png(), DescribeOptions(role="complex"))
    assert result.review_reasons == ["offline engine cannot describe charts; no long description"]


async def test_over_the_wire_a_twice_cut_off_answer_still_yields_the_alt(
    make: MakeEngine, fake_openrouter: FakeOpenRouter
) -> None:
    whole = answer(CHART, role="complex", long_description=BARS * 40)
    cut = Reply(whole[: whole.index("Q3")], finish_reason="length")
    fake_openrouter.enqueue(cut, cut)
    async with aiohttp.ClientSession() as http:
        config = ChatConfig(
            base_url=fake_openrouter.base_url,
            api_key=fake_openrouter.api_key,
            models=("google/gemini-2.5-flash-lite",),
        )
        provider = ChatCompletionsProvider(config, http)
        result = await make(provider).describe(photo_png(), DescribeOptions(role="complex"))
    assert result.alt_text == CHART
    assert result.review_reasons == [NO_LONG_CUT_OFF]
    sent = [r.json for r in fake_openrouter.chat_requests]
    assert "long_description: required" in json.dumps(sent[0]["messages"])
    assert sent[1]["max_tokens"] > sent[0]["max_tokens"]  # one more try with more room
